"""Erasure is a normal state for everyone else: a person erased at any point of any journey —
waiting for a timer or an event, with a message held for quiet hours, with a call task open —
has every enrolment ended, every pending message cancelled and every task closed with the
reason "erased", and the other leads' follow-ups go on for 60 days as if nothing happened."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path
from uuid import UUID
from zoneinfo import ZoneInfo

from demo.data import generate
from engine.adapters.clock import VirtualClock
from engine.application.engine import Engine
from engine.application.erasure import erase_lead
from engine.bootstrap.importing import import_leads, import_lifecycle
from engine.domain.delivery.delivery import Delivery
from tests.conftest import START, MakeEngine


def deliveries_of(engine: Engine) -> list[Delivery]:
    notes = engine.deliveries.recorder.select_notifications(start=None, limit=1_000_000)
    ids = dict.fromkeys(UUID(str(n.originator_id)) for n in notes)
    found = (engine.deliveries.get_delivery(i) for i in ids)
    return [d for d in found if isinstance(d, Delivery)]


def state_of(engine: Engine, lead_id: UUID, deliveries: list[Delivery], tasks: set[str]) -> set[str]:
    """What huoke still had planned for a lead: the kinds of step its enrolments wait at."""
    states = set()
    history = engine.journeys.history_of(lead_id)
    for eid in history.active:
        enrolment = engine.journeys.get_enrolment(eid)
        if enrolment is not None and enrolment.waiting_kind:
            states.add(f"waiting for {enrolment.waiting_kind}")
    if any(d.lead_id == lead_id and not d.is_settled and d.deferred_until is not None for d in deliveries):
        states.add("message held")
    if str(lead_id) in tasks:
        states.add("task open")
    return states


def live_run(engine: Engine, erase: bool) -> tuple[dict[UUID, set[str]], list[Delivery]]:
    """Leads, their lifecycle facts and the engine, hour by hour for 60 days; with ``erase``,
    someone who still has plans is erased every seven hours of the first twelve days."""
    rows, facts = generate(120, START, capture_days=3, sim_days=60, seed=11)
    zone = ZoneInfo("Asia/Shanghai")
    report = import_leads(engine, "erasure.jsonl", "CN", zone, rows=iter(enumerate(rows, 1)))
    assert report.created > 100  # the generator writes a bad phone now and then, as partners do
    erased: dict[UUID, set[str]] = {}
    states_seen: Counter[str] = Counter()
    for hour in range(0, 24 * 60, 7):
        now = START + timedelta(hours=hour)
        due = [e.row for e in facts if now - timedelta(hours=7) < e.at <= now]
        import_lifecycle(engine, "facts.jsonl", "CN", zone, rows=iter(enumerate(due, 1)))
        engine.run(until=now)
        if not erase or hour > 24 * 12:
            continue
        deliveries = deliveries_of(engine)
        tasks = {str(t["lead_id"]) for t in engine.index.tasks()}
        candidates = [
            (lead_id, state_of(engine, lead_id, deliveries, tasks))
            for lead_id in dict.fromkeys(d.lead_id for d in deliveries)
            if lead_id not in erased
        ]
        candidates = [c for c in candidates if c[1]]
        if not candidates:
            continue
        # The kind of plan erased least so far, so every kind is cut short somewhere.
        lead_id, states = min(candidates, key=lambda c: min(states_seen[s] for s in c[1]))
        sent = {d.id for d in deliveries if d.lead_id == lead_id and d.outcome is not None}
        done = erase_lead(engine, lead_id, "customer request", "dpo")
        assert done.lead.erased and done.enrolments_ended + done.messages_cancelled + done.tasks_closed >= 1
        states_seen.update(states)
        erased[lead_id] = sent  # type: ignore[assignment]
    engine.run(until=START + timedelta(days=60))
    if erase:
        assert {"waiting for time", "waiting for event", "message held", "task open"} <= set(states_seen), states_seen
    return erased, deliveries_of(engine)


def test_people_erased_mid_journey_stop_everything_and_the_others_go_on(
    make_engine: MakeEngine, clock: VirtualClock, tmp_path: Path
) -> None:
    baseline = make_engine(
        settings={"data_dir": tmp_path / "baseline", "outbox_dir": tmp_path / "baseline-out"}, clock=VirtualClock(START)
    )
    _, expected = live_run(baseline, erase=False)
    engine = make_engine()
    erased, after = live_run(engine, erase=True)  # no run fails, whoever was erased
    assert len(erased) > 20
    for lead_id, settled_before in erased.items():
        assert not engine.journeys.history_of(lead_id).active
        for d in (d for d in after if d.lead_id == lead_id):
            assert d.is_settled  # nothing left pending ...
            if d.id not in settled_before:  # ... and nothing sent after the erasure
                assert d.outcome is not None and d.outcome.value == "skipped", d  # type: ignore[attr-defined]
        assert all(str(t["lead_id"]) != str(lead_id) for t in engine.index.tasks())
    # Everyone else got exactly the messages they get when nobody is erased.
    outcome = {d.id: (d.outcome, d.step) for d in after if d.lead_id not in erased}
    assert outcome == {d.id: (d.outcome, d.step) for d in expected if d.lead_id not in erased}
    assert sum(o == "sent" for o, _ in outcome.values()) > 100
    assert not engine.index.due(START + timedelta(days=61), limit=10)  # no timer left behind
