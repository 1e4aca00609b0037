"""Opt-out from any channel stops the next send: the one-click link (over HTTP), an SMS reply
keyword, an agent's note. Opted-out contacts are not re-imported. SMS through a local server
speaking Twilio's API, with delivery receipts."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from fastapi.testclient import TestClient
from twilio.request_validator import RequestValidator

from engine.adapters.clock import VirtualClock
from engine.adapters.twilio_sms import TwilioCallbacks
from engine.application.delivery.links import LinkKeys
from engine.application.erasure import erase_lead
from engine.application.leads.timeline import lead_timeline
from engine.domain.delivery.suppression import is_opt_out
from engine.domain.shared.values import ConsentChannel, ConsentPurpose
from engine.entrypoints.http import create_app
from tests.conftest import MakeEngine
from tests.helpers import emails, sms_lines, young_pro


@pytest.mark.parametrize(
    "text",
    [
        "STOP",
        "stop",
        " Stop. ",
        "ＳＴＯＰ",
        "opt out",
        "Opt-Out",
        "T",
        "td",
        "Ｔ",
        "退订",
        " 取消 ",
        "unsubscribe",
        "REVOKE",
        "quit",
        "END",
        "cancel",
    ],
)
def test_opt_out_keywords(text: str) -> None:
    assert is_opt_out(text)


@pytest.mark.parametrize(
    "text", ["When will the money stop being pending in my account", "thanks", "TT", "好的", "yes"]
)
def test_ordinary_replies_are_not_opt_outs(text: str) -> None:
    assert not is_opt_out(text)


KEYS = LinkKeys("s3cret")
AUTH_TOKEN = "twilio-auth-token"


def app_for(engine: Any, phone_region: str = "CN") -> TestClient:
    return TestClient(create_app(engine, KEYS, phone_region, TwilioCallbacks(AUTH_TOKEN)))


def twilio_post(client: TestClient, path: str, data: dict[str, str], token: str = AUTH_TOKEN) -> Any:
    """POST a form as Twilio does: signed over the full URL and the parameters."""
    signature = RequestValidator(token).compute_signature(f"http://testserver{path}", data)
    return client.post(path, data=data, headers={"X-Twilio-Signature": signature})


def follow_ups(make_engine: MakeEngine, clock: VirtualClock) -> Any:
    engine = make_engine(settings={"unsubscribe_secret": "s3cret"})
    [out] = engine.leads.capture_leads([young_pro(1, captured_at=clock.now())])
    engine.run()
    return engine, out.lead_id


def test_one_click_unsubscribe_link_stops_the_next_email(
    make_engine: MakeEngine, clock: VirtualClock, tmp_path: Path
) -> None:
    engine, lead_id = follow_ups(make_engine, clock)
    assert len(emails(tmp_path / "outbox")) == 1
    link = engine.deliveries.unsubscribe_url(lead_id, "email")
    path = urllib.parse.urlparse(link).path
    client = app_for(engine)
    page = client.get(path).text  # in the lead's language (en), with the lender's name
    assert "Stop marketing e-mails from Huoke Lending?" in page and "Unsubscribe</button>" in page
    assert "退订" not in page
    forged = client.post(path[:-3] + "xyz", data={"List-Unsubscribe": "One-Click"})
    assert forged.status_code == 404
    assert client.post(path, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    engine.run(until=clock.now() + timedelta(days=30))
    assert len(emails(tmp_path / "outbox")) == 1  # the last-call e-mail was not sent
    assert len(sms_lines(tmp_path / "outbox")) == 2  # SMS consent is untouched


def test_sms_reply_keyword_stops_the_next_sms_and_blocks_reimport(
    make_engine: MakeEngine, clock: VirtualClock, tmp_path: Path
) -> None:
    engine, _ = follow_ups(make_engine, clock)
    client = app_for(engine)
    reply = twilio_post(client, "/sms/inbound", {"From": "+8613800130001", "Body": "退订", "MessageSid": "SM1"})
    assert reply.status_code == 200 and "<Response/>" in reply.text
    engine.run(until=clock.now() + timedelta(days=30))
    assert len(sms_lines(tmp_path / "outbox")) == 1  # no reminder SMS
    again = engine.leads.capture_leads(
        [young_pro(77, contact={"name": "Alex", "phone": "+8613800130001", "email": None, "language": "en"})]
    )
    assert "opted out earlier (suppression list)" in again[0].error


@pytest.mark.parametrize("sender", ["13800130001", "+86 138 0013 0001", "138-0013-0001"])
def test_a_reply_from_a_local_or_spaced_number_opts_out_the_lead(
    make_engine: MakeEngine, clock: VirtualClock, tmp_path: Path, sender: str
) -> None:
    engine, _ = follow_ups(make_engine, clock)
    client = app_for(engine, "CN")
    assert twilio_post(client, "/sms/inbound", {"From": sender, "Body": "STOP please"}).status_code == 200
    engine.run(until=clock.now() + timedelta(days=30))
    assert len(sms_lines(tmp_path / "outbox")) == 1  # no reminder SMS
    assert twilio_post(client, "/sms/inbound", {"From": "not a number", "Body": "STOP"}).status_code == 400


def test_agent_note_opt_out_applies_before_the_next_send(
    make_engine: MakeEngine, clock: VirtualClock, tmp_path: Path
) -> None:
    engine, lead_id = follow_ups(make_engine, clock)
    engine.leads.opt_out(lead_id, "all", "agent Wang", "asked on the phone not to be contacted")
    engine.run(until=clock.now() + timedelta(days=30))
    assert (len(sms_lines(tmp_path / "outbox")), len(emails(tmp_path / "outbox"))) == (1, 1)


class FakeTwilio(BaseHTTPRequestHandler):
    """Speaks the Messages resource of Twilio's REST API on loopback; records what it got."""

    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = urllib.parse.parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
        record = {
            "path": self.path,
            "auth": self.headers["Authorization"],
            "token": self.headers["I-Twilio-Idempotency-Token"],
            **{k: v[0] for k, v in body.items()},
        }
        if record["To"] == "+8613800130009":
            self._reply(400, {"code": 21211, "message": "The 'To' number is not a valid phone number."})
            return
        type(self).received.append(record)
        self._reply(201, {"sid": f"SM{len(type(self).received):032d}", "status": "queued"})

    def _reply(self, status: int, doc: dict[str, Any]) -> None:
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def twilio() -> Iterator[str]:
    FakeTwilio.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeTwilio)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_sms_through_the_twilio_api_with_idempotency_and_receipts(
    make_engine: MakeEngine, clock: VirtualClock, twilio: str
) -> None:
    engine = make_engine(
        settings={
            "sms_transport": "twilio",
            "twilio_account_sid": "AC123",
            "twilio_auth_token": "tok",
            "twilio_from": "+15005550006",
            "twilio_base_url": twilio,
            "public_url": "https://huoke.example",
        }
    )
    outs = engine.leads.capture_leads([young_pro(1), young_pro(9)])
    report = engine.run()
    assert report.dispatch.failed == 1  # +8613800130009 is refused by the provider: permanent
    [sent] = FakeTwilio.received
    assert sent["path"] == "/2010-04-01/Accounts/AC123/Messages.json"
    assert sent["auth"].startswith("Basic ") and sent["From"] == "+15005550006" and sent["To"] == "+8613800130001"
    assert sent["Body"].endswith("Reply STOP to opt out.")
    assert sent["StatusCallback"] == f"https://huoke.example/sms/status?send_id={sent['token']}"
    client = TestClient(create_app(engine, KEYS, "CN", TwilioCallbacks("tok"), "https://huoke.example"))
    path = f"/sms/status?send_id={sent['token']}"
    form = {"MessageStatus": "delivered", "MessageSid": "SM1"}
    signature = RequestValidator("tok").compute_signature(f"https://huoke.example{path}", form)
    unsigned = client.post(path, data=form)
    assert unsigned.status_code == 403  # anyone on the internet could post this
    receipt = client.post(path, data=form, headers={"X-Twilio-Signature": signature})
    assert receipt.status_code == 200
    bogus = {"MessageStatus": "delivered; DROP TABLE", "MessageSid": "SM1"}
    signed_bogus = RequestValidator("tok").compute_signature(f"https://huoke.example{path}", bogus)
    assert client.post(path, data=bogus, headers={"X-Twilio-Signature": signed_bogus}).status_code == 400
    engine.refresh_views()
    for _ in range(3):  # the same signed callback replayed: recorded once
        assert client.post(path, data=form, headers={"X-Twilio-Signature": signature}).status_code == 200
    whats = [t["what"] for t in lead_timeline(engine, outs[0].lead_id)["timeline"]]  # type: ignore[arg-type]
    assert whats.count("delivery receipt: delivered") == 1
    refused = lead_timeline(engine, outs[1].lead_id)["timeline"]  # type: ignore[arg-type]
    assert any("code 21211" in t["why"] for t in refused if t["event"] == "Delivery.Failed")


def test_double_opt_in_starts_marketing_email_only_after_the_link_is_confirmed(
    make_engine: MakeEngine, clock: VirtualClock, tmp_path: Path
) -> None:
    engine = make_engine(settings={"unsubscribe_secret": "s3cret", "email_double_opt_in": True})
    [out] = engine.leads.capture_leads([young_pro(1, captured_at=clock.now())])
    engine.run()
    [confirmation] = emails(tmp_path / "outbox")  # the marketing welcome waits for consent
    message = message_from_bytes(confirmation.read_bytes(), policy=policy.default)
    assert str(message["Subject"]) == "Alex, please confirm your e-mail"
    link = engine.deliveries.confirm_url(out.lead_id, "email")  # type: ignore[arg-type]
    assert link in message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    client = app_for(engine)
    path = urllib.parse.urlparse(link).path
    assert client.post(path.replace("/confirm/", "/confirm/x")).status_code in (404, 422)
    assert "Confirm that you want offers from Huoke Lending by e-mail." in client.get(path).text
    assert client.post(path).status_code == 200
    engine.run(until=clock.now() + timedelta(days=30))
    assert len(emails(tmp_path / "outbox")) == 2  # the confirmation, then the last-call marketing e-mail
    whats = [t["what"] for t in lead_timeline(engine, out.lead_id)["timeline"]]  # type: ignore[arg-type]
    assert "email marketing consent requested (awaiting confirmation)" in whats
    assert "email marketing consent granted" in whats


@pytest.mark.parametrize(
    ("order", "confirmed"),
    [
        (["link", "confirm"], True),
        (["link", "opt out", "confirm"], False),  # the link is older than the opt-out
        (["link", "erase", "confirm"], False),
        (["link", "opt out", "ask again", "confirm"], False),  # asked again, but this link is the old one
        (["link", "opt out", "ask again", "new link", "confirm"], True),  # the person's own new act
        (["link", "confirm", "opt out", "confirm"], False),  # a second click never undoes the opt-out
        (["link", "confirm", "confirm"], True),
    ],
)
def test_a_confirmation_link_never_grants_consent_past_a_later_opt_out(
    make_engine: MakeEngine, clock: VirtualClock, order: list[str], confirmed: bool
) -> None:
    engine = make_engine(settings={"unsubscribe_secret": "s3cret", "email_double_opt_in": True})
    [out] = engine.leads.capture_leads([young_pro(1, captured_at=clock.now())])
    lead_id = out.lead_id
    assert lead_id is not None
    client = app_for(engine)
    path = ""
    for step in order:
        clock.advance_to(clock.now() + timedelta(minutes=5))
        if step in ("link", "new link"):
            path = urllib.parse.urlparse(engine.deliveries.confirm_url(lead_id, "email")).path
        elif step == "confirm":
            client.post(path)
        elif step == "opt out":
            engine.leads.opt_out(lead_id, "email", "unsubscribe link", "one-click unsubscribe")
        elif step == "ask again":  # the web form again, with e-mail consent ticked
            lead = engine.leads.fresh_lead(lead_id)
            lead.request_consent(ConsentChannel.EMAIL, ConsentPurpose.MARKETING, "web form", "ticked", clock.now())
            engine.leads.save(lead)
        elif step == "erase":
            erase_lead(engine, lead_id, "request", "dpo")
    lead = engine.leads.fresh_lead(lead_id)
    assert lead.has_consent(ConsentChannel.EMAIL, ConsentPurpose.MARKETING) is confirmed
    last = client.post(path)
    assert last.status_code == (200 if confirmed else 410)
