"""The dispatcher takes the journeys' message requests up in the pass that decides on them (the
lean log, issue 27): a message that leaves at once is one event before its outcome, and the
deliveries an older huoke requested but had not dispatched go out after ``db init``."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from uuid import uuid4

import pytest
from eventsourcing.persistence import Tracking

from engine.adapters.clock import VirtualClock
from engine.application.delivery.base import REQUESTED_TOPICS
from engine.application.partitions import Partitions
from engine.application.projecting import next_owned_page, owned_positions
from engine.domain.delivery.delivery import Delivery
from engine.eventstore.saving import save_batch
from tests.conftest import START, MakeEngine
from tests.helpers import emails, requested_deliveries, sms_lines, young_pro


def test_a_message_that_leaves_at_once_is_requested_and_marked_by_one_event(
    store: str, make_engine: MakeEngine, clock: VirtualClock, tmp_path: Path
) -> None:
    engine = make_engine()
    [outcome] = engine.leads.capture_leads([young_pro()])
    report = engine.run()
    assert report.requested >= 2 and len(emails(tmp_path / "outbox")) == 1 and len(sms_lines(tmp_path / "outbox")) == 1
    for d in requested_deliveries(engine):
        stored = list(engine.deliveries.events.get(d.id))
        assert [type(e).__name__ for e in stored] == ["Requested", "Sent"]
        assert stored[0].dispatching_at is not None  # type: ignore[attr-defined]  # its marker
        assert engine.deliveries.get_delivery(d.id).attempts == 1  # type: ignore[union-attr]
    engine.run(until=clock.now() + timedelta(hours=1))
    assert len(emails(tmp_path / "outbox")) == 1  # nothing twice
    assert outcome.lead_id is not None


def test_a_stored_delivery_cannot_be_requested_again() -> None:
    d = Delivery(
        send_id=uuid4(), lead_id=uuid4(), enrolment_id=uuid4(), journey_id="j",
        journey_version=1, step="s", channel="email", template="t", reason="r", at=START,
    )  # fmt: skip
    leaving = d.requested_dispatching(START, ["https://example.com/"])
    assert (leaving.attempts, leaving.pending_attempt, leaving.link(1)) == (1, True, "https://example.com/")
    leaving.collect_events()  # stored
    with pytest.raises(ValueError, match="stored already"):
        leaving.requested_dispatching(START)


def test_requests_an_older_huoke_recorded_but_did_not_dispatch_go_out_after_db_init(
    store: str, make_engine: MakeEngine, clock: VirtualClock, tmp_path: Path
) -> None:
    """An older huoke stored a Delivery per request (then dispatched from its own log): the
    ones it had not dispatched when it stopped are handed to the schedule, due now, once."""
    engine = make_engine()
    engine.leads.capture_leads([young_pro(n) for n in range(1, 4)])
    engine.journeys.process_lead_events(engine.leads, engine.parts)
    # What the older huoke's request pass did: the requests as Deliveries, with its positions
    # (kept under the Journeys log's name, partitioned by enrolment).
    page = next_owned_page(engine.deliveries.recorder, engine.journeys, REQUESTED_TOPICS, engine.parts, 1000)
    assert page is not None
    save_batch(engine.deliveries, requested_deliveries(engine), page.trackings)
    # Leads it had not got to yet: their requests are taken up from where it stopped.
    engine.leads.capture_leads([young_pro(n) for n in range(4, 9)])
    engine.journeys.process_lead_events(engine.leads, engine.parts)
    count = engine.parts.count
    assert engine.deliveries.hand_over_requests("Journeys", count) == 6  # a welcome e-mail and SMS each
    assert engine.deliveries.hand_over_requests("Journeys", count) == 0  # once
    engine.run(until=clock.now() + timedelta(minutes=10))
    requested = len(requested_deliveries(engine))
    sent = len(emails(tmp_path / "outbox")) + len(sms_lines(tmp_path / "outbox"))
    assert sent == requested > 6  # every request, once (some arms of the split send nothing)
    engine.run(until=clock.now() + timedelta(minutes=30))
    assert len(emails(tmp_path / "outbox")) + len(sms_lines(tmp_path / "outbox")) == len(requested_deliveries(engine))


def test_a_followers_partition_positions_are_read_in_one_query(
    store: str, make_engine: MakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every page a follower reads starts from its partitions' positions: one query for all of
    them (eight partitions were eight read transactions a page)."""
    engine = make_engine()
    recorder = engine.deliveries.recorder
    recorder.insert_events([], trackings=[Tracking("Journeys#0", 5), Tracking("Journeys#2", 9)])
    one_by_one = {p: recorder.max_tracking_id(f"Journeys#{p}") or 0 for p in range(4)}
    monkeypatch.setattr(recorder, "max_tracking_id", None)  # not asked per partition
    assert owned_positions(recorder, "Journeys", Partitions.every(4)) == one_by_one == {0: 5, 1: 0, 2: 9, 3: 0}
    assert owned_positions(recorder, "Journeys", Partitions(4, frozenset({1, 2}))) == {1: 0, 2: 9}
