"""Backtests: a simulation over the same leads and facts matches a real run, and sends nothing."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from engine.adapters.clock import VirtualClock
from engine.application.journeys.simulation import Arrival, arrivals_from_store, first_moment, replay
from engine.application.leads.commands import CaptureLead
from engine.bootstrap import sandbox
from tests.conftest import MakeEngine, base_settings
from tests.helpers import emails, lifecycle, senior, sms_lines, young_pro


def scenario(clock: VirtualClock) -> list[Arrival]:
    t0 = clock.now()
    leads: list[CaptureLead] = [young_pro(n, captured_at=t0 + timedelta(hours=n)) for n in range(1, 25)]
    leads += [senior(n) for n in range(1, 6)]
    out = [Arrival(c.captured_at or t0, c) for c in leads]
    for n, lead in enumerate(leads[:8]):
        at = t0 + timedelta(days=1 + n % 4)
        out.append(Arrival(at, lifecycle("stage_changed", lead, at, stage="engaged")))
    for n, lead in enumerate(leads[8:12]):
        at = t0 + timedelta(days=2, hours=n)
        out.append(
            Arrival(
                at,
                lifecycle(
                    "application_submitted", lead, at, application_id=f"A{n}", loan_type="consumer", amount="50000"
                ),
            )
        )
    at = t0 + timedelta(days=1)
    out.append(Arrival(at, lifecycle("consent_withdrawn", leads[20], at, channel="sms")))
    return out


def test_simulation_matches_a_real_run_on_the_same_leads(
    make_engine: MakeEngine, clock: VirtualClock, tmp_path: Path
) -> None:
    engine = make_engine()
    arrivals = sorted(scenario(clock), key=lambda a: (a.at, not isinstance(a.command, CaptureLead)))
    end = clock.now() + timedelta(days=20)
    for arrival in arrivals:
        engine.run(until=arrival.at)
        if isinstance(arrival.command, CaptureLead):
            engine.leads.capture_leads([arrival.command])
        else:
            engine.leads.record_lifecycle([arrival.command])
    engine.run(until=end)
    engine.refresh_views()
    real = {(r["kind"], r["label"]): r["n"] for r in engine.index.outcomes("young-professionals")}
    sent_before = (len(sms_lines(tmp_path / "outbox")), len(emails(tmp_path / "outbox")))

    journey = engine.journeys.definition("young-professionals", 1)
    raw = engine.journeys.publication("young-professionals").versions[1]  # type: ignore[union-attr]
    settings = base_settings(tmp_path / "sim")
    arrivals = scenario(clock)
    with sandbox(settings, journey, raw, first_moment(arrivals)) as (scratch, recorded):
        sim = replay(scratch, journey, 1, arrivals, 20, recorded)

    assert sim["steps"] == {step: real.get(("reached", step), 0) for step in journey.steps}
    assert sim["exits"] == {label: n for (kind, label), n in real.items() if kind == "exit"}
    assert sim["goals"] == {label: n for (kind, label), n in real.items() if kind == "goal"}
    would_send = {(m["channel"], m["template"]): m["would_send"] for m in sim["messages"]}
    assert sum(would_send.values()) == sim["recorded_not_sent"] > 0
    assert (len(sms_lines(tmp_path / "outbox")), len(emails(tmp_path / "outbox"))) == sent_before  # nothing sent
    assert sim["skipped"]["reminder_sms"] >= 1  # the lead that opted out of SMS


def test_from_store_replays_captured_leads_with_their_consents_and_facts(
    make_engine: MakeEngine, clock: VirtualClock
) -> None:
    engine = make_engine()
    for arrival in sorted(scenario(clock), key=lambda a: (a.at, not isinstance(a.command, CaptureLead))):
        if isinstance(arrival.command, CaptureLead):
            engine.leads.capture_leads([arrival.command])
        else:
            engine.leads.record_lifecycle([arrival.command])
    arrivals = arrivals_from_store(engine, since=None)
    captures = [a for a in arrivals if isinstance(a.command, CaptureLead)]
    assert len(captures) == 29
    assert all(c.command.consents for c in captures)  # type: ignore[union-attr]
    kinds = sorted(a.command.kind for a in arrivals if not isinstance(a.command, CaptureLead))  # type: ignore[union-attr]
    assert kinds.count("application_submitted") == 4 and kinds.count("consent_withdrawn") == 1
