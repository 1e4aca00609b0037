"""Test sends through the real channels: an SMS reaches a local server speaking Twilio's API and
an e-mail the outbox, each marked as a test, to the seed list only; the lead's timeline, its
deliveries (and so its caps and spacing) and the reports stay as they were; and the links in a
test message never change the real lead's consent."""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from engine.adapters.clock import VirtualClock
from engine.application.analytics import engagement_report
from engine.application.journeys.trial_sends import TrialSendError, send_trial
from engine.application.leads.timeline import lead_timeline
from engine.entrypoints.http import create_app
from tests.conftest import MakeEngine
from tests.e2e.test_opt_out import KEYS, FakeTwilio, twilio  # noqa: F401 - the fixture
from tests.helpers import emails, young_pro

SEEDS = {"anna@lender.example", "+8613700000000"}


def test_test_sends_reach_the_seeds_through_twilio_and_smtp_and_change_nothing_of_the_lead(
    make_engine: MakeEngine,
    clock: VirtualClock,
    twilio: str,  # noqa: F811 - the fixture
    tmp_path: Path,
) -> None:
    engine = make_engine(
        settings={"sms_transport": "twilio", "twilio_account_sid": "AC123", "twilio_auth_token": "tok",
                  "twilio_from": "+15005550006", "twilio_base_url": twilio, "public_url": "https://huoke.example"}
    )  # fmt: skip
    [out] = engine.leads.capture_leads([young_pro(1, captured_at=clock.now())])
    assert out.lead_id is not None
    journey = engine.journeys.live["young-professionals"].journey
    engine.refresh_views()
    timeline = lead_timeline(engine, out.lead_id)["timeline"]
    deliveries = engine.deliveries.recorder.max_notification_id()
    report = engagement_report(engine)

    sms = send_trial(engine, journey, "welcome_sms", out.lead_id, "+86 137 0000 0000", SEEDS, clock.now())
    assert sms.result.ok
    [got] = FakeTwilio.received
    assert got["To"] == "+8613700000000" and got["Body"].startswith("[TEST] ") and "Alex" in got["Body"]
    with pytest.raises(TrialSendError, match="not on the test recipients' list"):
        send_trial(engine, journey, "welcome_sms", out.lead_id, "+8613800130001", SEEDS, clock.now())  # the lead
    with pytest.raises(TrialSendError, match="--to must be a phone number"):
        send_trial(engine, journey, "welcome_sms", out.lead_id, "anna@lender.example", SEEDS, clock.now())
    assert len(FakeTwilio.received) == 1

    mail = send_trial(engine, journey, "welcome_email", out.lead_id, "anna@lender.example", SEEDS, clock.now())
    assert mail.result.ok and (mail.subject or "").startswith("[TEST] ")
    [eml] = emails(tmp_path / "outbox")
    message = message_from_bytes(eml.read_bytes(), policy=policy.default)
    assert message["To"] == "anna@lender.example" and message["X-Huoke-Test"].startswith("journey young-professionals")
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    [unsubscribe] = re.findall(r"https?://\S*/unsubscribe\S*", text)
    assert unsubscribe.endswith("/unsubscribe/test-send") and "test-send" in message["List-Unsubscribe"]

    # The seed who clicks the test's unsubscribe link sees that it was a test; the lead stays subscribed.
    client = TestClient(create_app(engine, KEYS))
    for method in (client.get, client.post):
        page = method("/unsubscribe/test-send", headers={"Accept-Language": "en"})
        assert page.status_code == 200 and "This was a test message" in page.text
    engine.refresh_views()
    assert lead_timeline(engine, out.lead_id)["timeline"] == timeline  # never on the lead's timeline
    assert engine.deliveries.recorder.max_notification_id() == deliveries  # no delivery: no cap, no spacing
    assert engagement_report(engine) == report  # nor in a report

    # The lead's own journey then runs as if no test had been sent: its welcome SMS goes out.
    engine.run()
    assert [r["To"] for r in FakeTwilio.received] == ["+8613700000000", "+8613800130001"]
