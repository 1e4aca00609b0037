"""Consents given with a capture are recorded in the lead's Captured (the lean log, issue 27):
read back, the lead has them; readers are told each as the ConsentGranted it was before."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from eventsourcing.application import Application

from engine.domain.leads.lead import Lead, told
from engine.domain.shared.values import ConsentChannel, ConsentPurpose

AT = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


def _captured() -> Lead:
    return Lead(
        source={"channel": "web_form", "external_id": "W1"},
        contact={"name": "Alex", "phone": "+8613800130001", "email": "alex@example.com"},
        profile={},
        interest={},
        contact_issues=[],
        captured_at=AT,
    )


def test_a_capture_with_its_consents_is_one_event_and_reads_back_the_same() -> None:
    two = _captured()
    for channel in (ConsentChannel.EMAIL, ConsentChannel.SMS):
        two.grant_consent(channel, ConsentPurpose.MARKETING, "capture", "opt-in recorded at capture", AT)
    expected = dict(two.consents)
    one = two.as_one_capture()
    events = list(one.pending_events)
    assert [type(e).__name__ for e in events] == ["Captured"]
    app: Application[Any] = Application()
    app.save(one)
    back: Lead = app.repository.get(one.id)
    assert back.consents == expected and back.id == two.id
    granted = told(events[0])[1:]
    assert [(g.channel, g.purpose, g.source, g.evidence, g.at) for g in granted] == [
        ("email", "marketing", "capture", "opt-in recorded at capture", AT),
        ("sms", "marketing", "capture", "opt-in recorded at capture", AT),
    ]


def test_only_a_new_lead_given_nothing_but_consents_is_folded() -> None:
    plain = _captured()
    assert plain.as_one_capture() is plain  # no consents
    awaiting = _captured()
    awaiting.request_consent(ConsentChannel.EMAIL, ConsentPurpose.MARKETING, "capture", "double opt-in", AT)
    assert awaiting.as_one_capture() is awaiting  # a request waits for confirmation
    stored = _captured()
    stored.collect_events()
    stored.grant_consent(ConsentChannel.SMS, ConsentPurpose.MARKETING, "import", "later", AT)
    assert stored.as_one_capture() is stored  # its capture is stored already
