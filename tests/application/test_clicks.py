"""Clicks on tracked links drive journeys: a lead clicks the link taken from the e-mail huoke
wrote, and the journey waiting for that click goes on at once; another lead's wait times out;
scanners never count; a replayed click counts once; the lead becomes engaged, with the reason."""

from __future__ import annotations

import re
from datetime import timedelta
from email import message_from_bytes, policy
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from engine.adapters.clock import VirtualClock
from engine.application.analytics import attribution_report, engagement_report
from engine.application.delivery.links import LinkKeys
from engine.application.engine import Engine
from engine.application.leads.timeline import lead_timeline
from engine.bootstrap.importing import import_lifecycle
from engine.domain.delivery.delivery import Delivery
from engine.entrypoints.http import create_app
from tests.conftest import MakeEngine
from tests.helpers import ALL_CONFIG, TEST_LINK_KEY, emails, journeys_folder, sms_lines, young_pro

PUBLIC = "https://huoke.example"
BROWSER = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148 Safari/604.1"
OFFER = """
    id: offer-clicks
    name: Offer, then a call for those who click
    locales: [zh-CN, en]
    entry: {on: lead_captured}
    vars: {apply_url: "https://lender.example/apply?src=mail", hotline: 400-800-8888}
    start: offer
    steps:
      - id: offer
        send: {channel: email, template: yp_quick_apply}
        next: clicked_offer
      - id: clicked_offer
        wait_for: {click: offer, timeout: 2d}
        next: call
        on_timeout: reminder
      - id: call
        task: {kind: call, queue: loan_officers, note: clicked the offer, due_in: 1d}
        next: done
      - id: reminder
        send: {channel: sms, template: yp_reminder}
        next: done
      - {id: done, exit: completed}
"""


#: A second journey, waiting for a click on any message from the offer's template.
WATCHER = """
    id: offer-watch
    name: Call whoever clicks the quick-apply e-mail
    locales: [zh-CN, en]
    entry: {on: lead_captured}
    start: clicked
    steps:
      - id: clicked
        wait_for: {click_template: yp_quick_apply, timeout: 10d}
        next: tag
        on_timeout: done
      - id: tag
        update: {tag: clicked_quick_apply}
        next: done
      - {id: done, exit: completed}
"""


@pytest.fixture
def engine(make_engine: MakeEngine, tmp_path: Path) -> Engine:
    folder = journeys_folder(tmp_path, config=ALL_CONFIG, offer=OFFER, watch=WATCHER)
    return make_engine(settings={"journeys_dir": folder, "public_url": PUBLIC, "unsubscribe_secret": TEST_LINK_KEY})


def tracked_links(eml: Path) -> dict[str, list[str]]:
    """The links of an e-mail huoke wrote: its HTML hrefs and the URLs of its text part."""
    message = message_from_bytes(eml.read_bytes(), policy=policy.default)
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    return {"html": re.findall(r'href="([^"]+)"', html), "text": re.findall(r"https?://\S+", text)}


def client_for(engine: Engine) -> TestClient:
    return TestClient(create_app(engine, LinkKeys(TEST_LINK_KEY)), follow_redirects=False)


def test_a_click_on_the_emailed_link_moves_the_journey_and_a_timeout_fires_for_the_other(
    engine: Engine, clock: VirtualClock, tmp_path: Path
) -> None:
    [clicker, other] = engine.leads.capture_leads([young_pro(1), young_pro(2)])
    assert clicker.lead_id is not None and other.lead_id is not None
    engine.run()
    by_lead = {}
    for eml in emails(tmp_path / "outbox"):
        to = message_from_bytes(eml.read_bytes(), policy=policy.default)["To"]
        by_lead[str(to)] = tracked_links(eml)
    links = by_lead["alex1@example.com"]
    offer = [u for u in links["html"] if "/l/" in u]
    assert offer and all(u.startswith(f"{PUBLIC}/l/") for u in offer)
    assert [u for u in links["text"] if "/l/" in u] == offer  # the same link in both parts
    assert any("/unsubscribe/" in u for u in links["html"])  # never tracked
    assert "lender.example/apply" not in str(links)  # the destination is not in the message
    client = client_for(engine)
    path = urlsplit(offer[0]).path
    clock.advance_to(clock.now() + timedelta(hours=2))
    assert client.head(path, headers={"User-Agent": BROWSER}).status_code == 302  # a link checker's HEAD
    scanner = client.get(path, headers={"User-Agent": "Mozilla/5.0 (compatible; Barracuda Sentinel (EE))"})
    assert scanner.status_code == 302
    engine.run()
    assert engine.leads.fresh_lead(clicker.lead_id).stage.value == "contacted"  # scanners are not engagement
    for _ in range(100):  # the person's click, replayed a hundred times
        answer = client.get(path, headers={"User-Agent": BROWSER})
        assert answer.status_code == 302
    destination = urlsplit(answer.headers["location"])
    assert (destination.netloc, destination.path) == ("lender.example", "/apply")
    assert parse_qs(destination.query) == {"src": ["mail"], "hk": [path.rsplit("/", 1)[1]]}
    engine.run(until=clock.now() + timedelta(days=3))
    lead = engine.leads.fresh_lead(clicker.lead_id)
    assert lead.stage.value == "engaged" and len(lead.clicks) == 1
    [(send_id, _)] = lead.clicked_links
    events = list(engine.deliveries.repository.event_store.get(send_id))
    kinds = sorted((e.kind, e.reason) for e in events if isinstance(e, Delivery.Clicked))
    assert [k for k, _ in kinds] == ["human", "scanner"]  # one each, however often it was followed
    timeline = lead_timeline(engine, clicker.lead_id)["timeline"]  # type: ignore[arg-type]
    assert any("clicked link 1 of yp_quick_apply (offer-clicks, step offer)" in t["why"] for t in timeline)
    tasks = {str(t["lead_id"]) for t in engine.index.tasks()}
    assert str(clicker.lead_id) in tasks and str(other.lead_id) not in tasks  # the click led to the call
    assert "clicked_quick_apply" in lead.tags  # the other journey, waiting for a click on that template
    assert "clicked_quick_apply" not in engine.leads.fresh_lead(other.lead_id).tags
    reminders = sms_lines(tmp_path / "outbox")
    assert [r["to"] for r in reminders] == ["+8613800130002"]  # the other's wait timed out: a reminder
    assert "/l/" in reminders[0]["text"]
    engine.refresh_views()
    report = engagement_report(engine)
    [offer_row] = [r for r in report["steps"] if r["step"] == "offer"]
    assert (offer_row["sent"], offer_row["clicked"], offer_row["click_through_rate"]) == (2, 1, 0.5)
    assert offer_row["scanner_clicked"] == 1 and offer_row["template"] == "yp_quick_apply"


def test_a_forged_or_unknown_code_is_never_redirected(engine: Engine) -> None:
    client = client_for(engine)
    for code in ("x" * 31, "A" * 31, "not-a-code", "../../etc/passwd", "%2e%2e"):
        answer = client.get(f"/l/{code}", headers={"User-Agent": BROWSER})
        assert answer.status_code == 404 and "location" not in answer.headers


def test_tracking_is_off_without_a_public_url(make_engine: MakeEngine, tmp_path: Path) -> None:
    engine = make_engine(settings={"journeys_dir": journeys_folder(tmp_path, config=ALL_CONFIG, offer=OFFER)})
    engine.leads.capture_leads([young_pro(1)])
    engine.run()
    [eml] = emails(tmp_path / "outbox")
    assert "https://lender.example/apply?src=mail" in str(tracked_links(eml))


def test_a_lead_who_withdrew_tracking_gets_links_as_written(engine: Engine, tmp_path: Path) -> None:
    [out] = engine.leads.capture_leads([young_pro(1)])
    assert engine.leads.set_tracking(out.lead_id, "all", False, "api:crm", "asked not to be tracked")  # type: ignore[arg-type]
    assert not engine.leads.set_tracking(out.lead_id, "email", False, "api:crm", "again")  # type: ignore[arg-type]
    engine.run()
    [eml] = emails(tmp_path / "outbox")
    links = tracked_links(eml)
    assert "https://lender.example/apply?src=mail" in links["text"] and not any("/l/" in u for u in links["html"])


def test_an_application_is_attributed_to_the_message_whose_link_it_came_through(
    engine: Engine, clock: VirtualClock, tmp_path: Path
) -> None:
    [clicker, other] = engine.leads.capture_leads([young_pro(1), young_pro(2)])
    engine.run()
    by_lead = {
        str(message_from_bytes(e.read_bytes(), policy=policy.default)["To"]): tracked_links(e)
        for e in emails(tmp_path / "outbox")
    }
    path = urlsplit(next(u for u in by_lead["alex1@example.com"]["html"] if "/l/" in u)).path
    clock.advance_to(clock.now() + timedelta(hours=3))
    answer = client_for(engine).get(path, headers={"User-Agent": BROWSER})
    ref = parse_qs(urlsplit(answer.headers["location"]).query)["hk"][0]  # what the lender's site keeps
    rows = [
        {"type": "application_submitted", "lead_id": str(clicker.lead_id), "application_id": "A1",
         "loan_type": "consumer", "amount": "50000", "click_ref": ref},
        # Another lead's application quoting that reference proves nothing: not attributed.
        {"type": "application_submitted", "lead_id": str(other.lead_id), "application_id": "B1",
         "loan_type": "consumer", "amount": "50000", "click_ref": ref},
        {"type": "application_submitted", "lead_id": str(other.lead_id), "application_id": "B2",
         "loan_type": "consumer", "amount": "50000", "click_ref": "forged" + ref[6:]},
    ]  # fmt: skip
    report = import_lifecycle(engine, "crm", "CN", ZoneInfo("Asia/Shanghai"), rows=iter(enumerate(rows, 1)))
    assert not report.errors
    import_lifecycle(engine, "crm", "CN", ZoneInfo("Asia/Shanghai"), rows=iter(enumerate(rows, 1)))  # again
    engine.run()
    engine.refresh_views()
    [offer] = [r for r in engagement_report(engine)["steps"] if r["step"] == "offer"]
    assert (offer["converted"], offer["last_click_applications"], offer["applied_after_click"]) == (1, 1, 1)
    last = attribution_report(engine)["last_click_messages"]
    assert last == [{"journey_id": "offer-clicks", "step": "offer", "applications": 1, "reported": 1}]
