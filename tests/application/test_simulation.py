"""Backtests: a simulation over the same leads and facts matches a real run, and sends nothing."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from engine.adapters.clock import VirtualClock
from engine.application.journeys.simulation import Arrival, arrivals_from_store, first_moment, ordered, replay
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


def test_a_backtest_of_every_bundled_journey_reaches_each_step_as_often_as_live(
    make_engine: MakeEngine, clock: VirtualClock, tmp_path: Path
) -> None:
    """Generated leads of every audience and channel, live with all the bundled journeys, then
    each journey backtested beside the others (the product catalogue, contact policy and desk as
    live): every step of every journey is reached as often, the same messages would go out."""
    from zoneinfo import ZoneInfo

    from demo.data import generate
    from engine.adapters.lead_rows import LeadRow, LifecycleRow
    from engine.application.importing import RowError

    rows, facts = generate(60, clock.now(), capture_days=2, sim_days=14, seed=5)
    zone = ZoneInfo("Asia/Shanghai")
    arrivals: list[Arrival] = []
    for n, row in enumerate(rows):
        try:
            cmd = LeadRow.model_validate(row).to_command("CN", zone, f"l:{n}")
        except (ValueError, RowError):
            continue
        arrivals.append(Arrival(cmd.captured_at or clock.now(), cmd))
    for n, fact in enumerate(facts):  # engagement, applications, approvals, funding, opt-outs
        record = LifecycleRow.model_validate(fact.row).to_command("CN", zone, f"e:{n}")
        arrivals.append(Arrival(fact.at, record))
    engine = make_engine()
    start = first_moment(arrivals)
    for arrival in ordered(arrivals):
        engine.run(until=arrival.at)
        if isinstance(arrival.command, CaptureLead):
            engine.leads.capture_leads([arrival.command])
        else:
            engine.leads.record_lifecycle([arrival.command])
    engine.run(until=start + timedelta(days=14))
    engine.refresh_views()
    live = {jid: engine.journeys.live[jid] for jid in engine.journeys.live}
    beside = [(lj.journey, lj.publication.versions[lj.version]) for lj in live.values()]  # type: ignore[union-attr]
    compared = offers = 0
    for jid, lj in sorted(live.items()):
        real = {(r["kind"], r["label"]): r["n"] for r in engine.index.outcomes(jid)}
        raw = lj.publication.versions[lj.version]  # type: ignore[union-attr]
        with sandbox(base_settings(tmp_path / f"sim-{jid}"), lj.journey, raw, start, beside) as (scratch, recorded):
            sim = replay(scratch, lj.journey, lj.version, arrivals, 14, recorded)
        assert sim["steps"] == {s: real.get(("reached", s), 0) for s in lj.journey.steps}, jid
        assert sim["exits"] == {label: n for (kind, label), n in real.items() if kind == "exit"}, jid
        compared += sum(sim["steps"].values()) > 0
        offers += sim["steps"].get("fits_an_offer", 0)
    assert compared >= 3 and offers > 0  # the audiences' journeys had leads; product fit was decided

    # From the store (`huoke simulate ID --from-store`): the leads and facts as recorded replay
    # to the same counts, for the journeys that had leads.
    stored = arrivals_from_store(engine, since=None)
    for jid in ("young-professionals", "seniors-advisor", "sme-one-stop"):
        lj = live[jid]
        real = {(r["kind"], r["label"]): r["n"] for r in engine.index.outcomes(jid)}
        raw = lj.publication.versions[lj.version]  # type: ignore[union-attr]
        with sandbox(base_settings(tmp_path / f"store-{jid}"), lj.journey, raw, start, beside) as (scratch, recorded):
            sim = replay(scratch, lj.journey, lj.version, stored, 14, recorded)
        assert sim["steps"] == {s: real.get(("reached", s), 0) for s in lj.journey.steps}, jid


def test_a_sandbox_scores_leads_with_the_lenders_registered_models(
    make_engine: MakeEngine, clock: VirtualClock, tmp_path: Path
) -> None:
    """Preview and simulate decide on the same credit bands as live: the sandbox gets the model
    registry (its events) and the model files."""
    from demo.runner import write_back_book
    from engine.adapters.model_data import read_csv
    from engine.application.screening import models
    from tests.conftest import settings_of

    engine = make_engine()
    book = write_back_book(tmp_path, clock.now(), 1500)
    models.train(engine, "credit", read_csv(book, "bad", "funded_at", ["loan_id"]), "test", False)
    [out] = engine.leads.capture_leads([young_pro(1)])
    live_band = engine.leads.get_lead(out.lead_id).scores["credit"].band  # type: ignore[arg-type]
    journey = engine.journeys.definition("young-professionals", 1)
    raw = engine.journeys.publication("young-professionals").versions[1]  # type: ignore[union-attr]
    with sandbox(settings_of(engine), journey, raw, clock.now(), models_from=engine) as (scratch, _):
        [again] = scratch.leads.capture_leads([young_pro(1)])
        assert scratch.leads.get_lead(again.lead_id).scores["credit"].band == live_band  # type: ignore[arg-type]
    with sandbox(settings_of(engine), journey, raw, clock.now()) as (bare, _):
        [alone] = bare.leads.capture_leads([young_pro(1)])
        assert "credit" not in bare.leads.get_lead(alone.lead_id).scores  # type: ignore[arg-type]
