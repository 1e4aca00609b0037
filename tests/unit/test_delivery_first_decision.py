"""A request held or stopped at once is one event (the lean log, issue 27): stored and read back
it is the same delivery, and readers are told the decision as the event it was before."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from eventsourcing.application import Application

from engine.domain.delivery.delivery import Delivery, told
from engine.domain.shared.values import DeliveryOutcome

AT = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


def _new() -> Delivery:
    return Delivery(
        send_id=uuid4(), lead_id=uuid4(), enrolment_id=uuid4(), journey_id="j", journey_version=1, step="s",
        channel="sms", template="t", reason="r", at=AT,
    )  # fmt: skip


def _stored_and_read(d: Delivery) -> Delivery:
    app: Application[Any] = Application()
    app.save(d)
    back: Delivery = app.repository.get(d.id)
    return back


def test_a_request_deferred_at_once_is_one_event_and_reads_back_the_same() -> None:
    two = _new()
    until = AT + timedelta(hours=8)
    two.defer(until, "outside contact window 09:00-20:00", AT)
    expected = (two.deferred_until, two.transient_failures, two.trouble_since, two.outcome, two.requested_at)
    one = two.with_first_decision()
    events = list(one.pending_events)
    assert [type(e).__name__ for e in events] == ["Requested"]
    back = _stored_and_read(one)
    assert (
        back.deferred_until,
        back.transient_failures,
        back.trouble_since,
        back.outcome,
        back.requested_at,
    ) == expected
    [requested, deferred] = told(events[0])
    assert requested is events[0] and isinstance(deferred, Delivery.Deferred)
    assert (deferred.until, deferred.reason, deferred.transient, deferred.at) == (
        until,
        "outside contact window 09:00-20:00",
        False,
        AT,
    )


def test_a_request_skipped_at_once_is_one_event_and_the_others_are_left_alone() -> None:
    d = _new()
    d.mark_skipped("no SMS consent", AT)
    one = d.with_first_decision()
    events = list(one.pending_events)
    assert [type(e).__name__ for e in events] == ["Requested"]
    assert _stored_and_read(one).outcome == DeliveryOutcome.SKIPPED
    assert [type(e).__name__ for e in told(events[0])] == ["Requested", "Skipped"]
    sent = _new()
    sent.mark_sent("+8613800130001", "en", "", "x", "ref", AT)
    assert sent.with_first_decision() is sent  # only a hold or a stop is folded
    stored = _new()
    stored.collect_events()
    stored.defer(AT + timedelta(hours=1), "cap", AT)
    assert stored.with_first_decision() is stored  # its request is stored already
