"""Memory follows the work in flight (issue 27): an aggregate nothing in the usual flow loads again
— a settled message, an enrolment that exited, a finished task, a lead event's refusals, a
referral code — leaves the aggregate cache once saved, and is read from the store if it is ever
needed; what is still at work stays cached."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from engine.adapters.clock import VirtualClock
from engine.domain.delivery.delivery import Delivery
from engine.domain.journeys.enrolment import Enrolment
from engine.eventstore import saving
from engine.eventstore.saving import warm_cache
from tests.conftest import START, MakeEngine, settings_of
from tests.helpers import count_calls, emails, requested_deliveries, young_pro


def _cached(app: Any) -> list[Any]:
    return [link[3] for link in app.repository.cache.cache.values()]


def test_finished_aggregates_leave_the_cache_and_are_read_from_the_store_again(
    store: str, make_engine: MakeEngine, clock: VirtualClock
) -> None:
    engine = make_engine()
    engine.leads.capture_leads([young_pro(n) for n in range(1, 4)])
    engine.run(until=clock.now() + timedelta(hours=2))  # first messages out, waits started
    waiting = [e for e in _cached(engine.journeys) if isinstance(e, Enrolment)]
    assert waiting and all(e.is_active for e in waiting)  # still at work: cached
    engine.run(until=clock.now() + timedelta(days=45))  # every journey over
    apps = [engine.journeys, engine.deliveries, *([engine.referrals] if engine.referrals else [])]
    assert [a for app in apps for a in _cached(app) if app.finished(a)] == []
    assert not [d for d in _cached(engine.deliveries) if isinstance(d, Delivery)]
    assert len([lead for lead in _cached(engine.leads) if type(lead).__name__ == "Lead"]) == 3  # leads stay
    sent = [d for d in requested_deliveries(engine) if d.is_settled]
    assert sent
    again = engine.deliveries.get_delivery(sent[0].id)  # from the store
    assert again is not None and again.is_settled and again.attempts == sent[0].attempts
    exited = [e for e in waiting if not engine.journeys.repository.get(e.id).is_active]
    assert exited  # an enrolment that exited reads back from the store as it was left


def _log(engine: Any) -> Counter[str]:
    """Every stored event of the engine's stores, by originator and kind (not by position)."""
    return Counter(
        f"{n.originator_id}:{n.originator_version}:{n.topic}"
        for app in (engine.leads, engine.journeys, engine.deliveries)
        for n in app.recorder.select_notifications(start=None, limit=100_000)
    )


def test_a_backlog_flows_through_in_rounds_to_what_one_pass_records(
    make_engine: MakeEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A settle pass takes up a round of lead events (2,000 by default), then dispatches and
    updates on what they decided before the next round: the same events, the same e-mails."""
    one = make_engine(clock=VirtualClock(START))
    rounds = make_engine(
        clock=VirtualClock(START),
        settings={"data_dir": tmp_path / "r" / "data", "outbox_dir": tmp_path / "r" / "outbox"},
    )
    rounds.round, rounds.lead_page = 2, 1  # rounds of two lead events
    dispatches = count_calls(monkeypatch, rounds.deliveries, "dispatch")
    for engine in (one, rounds):
        engine.leads.capture_leads([young_pro(n) for n in range(1, 8)])
        engine.run(until=START + timedelta(days=1))
    assert len(dispatches) >= 4  # seven captures: four rounds before the first pass settles
    assert _log(rounds) == _log(one) and sum(_log(one).values()) > 40
    assert len(emails(tmp_path / "r" / "outbox")) == len(emails(tmp_path / "outbox")) > 0


def test_a_lead_saved_here_stays_cached_and_another_process_s_change_is_still_seen(
    store: str, make_engine: MakeEngine, clock: VirtualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lead this process captured is used from the cache, not read back from the store by the
    next use case (eventsourcing caches what it saves only when the cache does not fast-forward,
    and the leads' cache does); what another process commits later is still seen."""
    engine = make_engine()
    other = make_engine()  # another process on the same store
    lead_id = engine.leads.capture_leads([young_pro(1)])[0].lead_id
    assert lead_id is not None
    read_back = count_calls(monkeypatch, engine.leads.repository, "_reconstruct_aggregate")
    version = engine.leads.repository.get(lead_id).version
    assert read_back == [] and version == engine.leads.fresh_lead(lead_id).version
    other.leads.opt_out(lead_id, "email", "unsubscribe link", "clicked unsubscribe", clock.now())
    seen = engine.leads.get_lead(lead_id)  # fast-forwarded from the cached version
    assert seen.version == other.leads.fresh_lead(lead_id).version > version
    engine.run(until=clock.now() + timedelta(days=1))
    assert emails(settings_of(engine).outbox_dir) == []  # the opt-out another process took stops the welcome


def test_aggregates_not_cached_are_read_together_and_built_as_one_read_each_builds_them(
    store: str, make_engine: MakeEngine, clock: VirtualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch's leads and enrolments that a process does not hold (a new process, or ones its
    cache let go at scale) are read in one query for the batch, not one read each: each is
    built as the store's own read builds it, personal fields open; ids with no events are left
    out."""
    engine = make_engine()
    engine.leads.capture_leads([young_pro(n) for n in range(1, 5)])
    engine.run(until=clock.now() + timedelta(hours=2))  # first messages out, waits started
    leads = sorted(lead.id for lead in _cached(engine.leads) if type(lead).__name__ == "Lead")
    enrolments = sorted(e.id for e in _cached(engine.journeys) if isinstance(e, Enrolment))
    assert len(leads) == 4 and len(enrolments) >= 2
    fresh = make_engine()  # another process: nothing cached
    one_each = [count_calls(monkeypatch, app.recorder, "select_events") for app in (fresh.leads, fresh.journeys)]
    unknown = uuid4()
    monkeypatch.setattr(saving, "_READ_TOGETHER", 3)  # a batch read in several queries reads the same
    read = fresh.leads.current([*leads, unknown])
    warm_cache(fresh.journeys, [*enrolments, unknown])
    built = {eid: fresh.journeys.repository.get(eid) for eid in enrolments}  # from the cache now
    assert one_each == [[], []]  # no aggregate read on its own
    assert sorted(read) == leads and unknown not in fresh.journeys.repository.cache.cache  # type: ignore[union-attr]
    for lead_id in leads:
        alone = engine.leads.fresh_lead(lead_id)  # read on its own, as the store's repository reads
        assert vars(read[lead_id]) == vars(alone) and "@example.com" in read[lead_id].contact["email"]  # opened
    for eid in enrolments:
        assert vars(built[eid]) == vars(engine.journeys.repository.get(eid, version=10**6))
