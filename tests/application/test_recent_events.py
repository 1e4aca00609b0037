"""The views (and the followers that read no personal data) of an engine take the events it
saved itself from memory instead of decoding them again (``RecentEvents``): what they get must be
what they would decode, type for type, the personal fields shut as the store keeps them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from demo.data import generate
from engine.adapters.clock import VirtualClock
from engine.application.erasure import erase_lead
from engine.bootstrap.importing import import_leads, import_lifecycle
from engine.eventstore import saving
from tests.conftest import START, MakeEngine


def same(a: Any, b: Any, where: str = "") -> None:
    """``a`` and ``b`` are equal and of the same types all the way down (a tuple is not a list)."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} {a!r} against {type(b).__name__} {b!r}"
    if isinstance(a, dict):
        assert a.keys() == b.keys(), f"{where}: {sorted(a)} against {sorted(b)}"
        for k in a:
            same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), f"{where}: {a!r} against {b!r}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} against {b!r}"


def test_what_readers_take_from_memory_is_what_they_would_decode(
    make_engine: MakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(clock=VirtualClock(START))
    kept: dict[int, list[tuple[int, Any]]] = {}
    remember = saving.RecentEvents.remember

    def spy(self: saving.RecentEvents, mapper: Any, recordings: Any) -> None:
        remember(self, mapper, recordings)
        kept.setdefault(id(self), []).extend((r.notification.id, self.events[r.notification.id]) for r in recordings)

    monkeypatch.setattr(saving.RecentEvents, "remember", spy)
    rows, facts = generate(80, START, capture_days=2, sim_days=20, seed=7)
    zone = ZoneInfo("Asia/Shanghai")
    import_leads(engine, "leads.jsonl", "CN", zone, rows=iter(enumerate(rows, 1)))
    erased = False
    for hour in range(0, 24 * 20, 7):
        now = START + timedelta(hours=hour)
        due = [e.row for e in facts if now - timedelta(hours=7) < e.at <= now]
        import_lifecycle(engine, "facts.jsonl", "CN", zone, rows=iter(enumerate(due, 1)))
        engine.run(until=now)
        if hour > 24 * 3 and not erased:  # someone erased mid-journey: their later events are shut too
            first = engine.deliveries.recorder.select_notifications(start=None, limit=1)
            delivery: Any = engine.deliveries.mapper.to_domain_event(first[0])
            erase_lead(engine, delivery.lead_id, "customer request", "dpo")
            erased = True
    checked: dict[str, int] = {}
    for app in (engine.leads, engine.journeys, engine.deliveries, engine.referrals):
        recent = saving.recent_events(app)
        assert recent is not None, app.name
        for note_id, event in kept.get(id(recent), []):
            [note] = app.recorder.select_notifications(start=note_id, limit=1)
            assert note.id == note_id
            stored = saving.decode_page(app.mapper, [note], personal=False)[0]
            same(vars(event), vars(stored), f"{app.name} #{note_id} {type(stored).__qualname__}")
            assert type(event) is type(stored)
            checked[type(stored).__qualname__] = checked.get(type(stored).__qualname__, 0) + 1
    assert sum(checked.values()) > 1500 and len(checked) > 20, checked
    assert {"Lead.Captured", "Delivery.Sent", "Delivery.Requested"} <= set(checked)  # sealed fields among them


def test_a_process_reads_back_nothing_it_saved_for_its_views_and_keeps_the_last_few(
    make_engine: MakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One engine process (no helper, no import elsewhere): its views and its followers that read
    no personal data decode none of the events it saved, and it
    holds at most the last few thousand."""
    from tests.helpers import young_pro

    engine = make_engine(clock=VirtualClock(START))
    unopened: list[int] = []
    real = saving.SealingMapper.to_domain_event_unopened

    def spy(self: saving.SealingMapper, stored: Any) -> Any:
        unopened.append(getattr(stored, "id", 0))
        return real(self, stored)

    monkeypatch.setattr(saving.SealingMapper, "to_domain_event_unopened", spy)
    engine.leads.capture_leads([young_pro(n) for n in range(1, 21)])
    engine.run(until=START + timedelta(days=5))
    assert unopened == []
    for app in (engine.leads, engine.journeys, engine.deliveries):
        recent = saving.recent_events(app)
        assert recent is not None and 0 < len(recent.events) <= recent.limit, app.name


def test_the_oldest_events_go_first() -> None:
    from types import SimpleNamespace

    recent = saving.RecentEvents(limit=3)
    for note_id in range(1, 6):
        recent.remember(object(), [SimpleNamespace(notification=SimpleNamespace(id=note_id), domain_event=note_id)])  # type: ignore[arg-type]
    assert recent.events == {3: 3, 4: 4, 5: 5}
