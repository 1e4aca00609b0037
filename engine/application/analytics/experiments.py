"""Splits and holdouts: lift with fixed-horizon and always-valid intervals, and uplift targeting."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from engine.application.analytics.common import ALL_LEADS, Scope
from engine.application.engine import Engine
from engine.domain.journeys.journey import SplitStep
from engine.domain.marketing.lift import Lift
from engine.domain.screening.uplift import PERSUADABLE, UPLIFT, uplift_kind
from engine.domain.shared.values import MILESTONES

# ---- experiments -------------------------------------------------------------------------------

EXPERIMENTS_SCHEMA = "huoke.report.experiments/1"


def experiments_report(engine: Engine, scope: Scope = ALL_LEADS) -> dict[str, Any]:
    """For every split (and holdout) of every published journey: per arm, the leads assigned and
    how many reached each of the journey's goals within its window, and how many clicked a
    tracked link of the journey (``clicked``: click-through); each arm against the control (the
    holdout arm, else the first arm): absolute and relative lift with 95% intervals, and a
    verdict in plain words."""
    engine.journeys.refresh_live()
    since = scope.since.isoformat() if scope.since else None
    until = (scope.until + timedelta(days=1)).isoformat() if scope.until else None
    uplift_models = engine.leads.registry(UPLIFT).in_use()  # read once, for every split
    out = []
    for jid, live in sorted(engine.journeys.live.items()):
        if scope.journey and jid != scope.journey:
            continue
        journey = live.journey
        splits = [s for s in journey.steps.values() if isinstance(s, SplitStep)]
        if not splits:
            continue
        goals = {g.stage.value: (g.within.total_seconds() if g.within else None) for g in journey.goals}
        goals = {k: v for k, v in goals.items() if k in MILESTONES} or {"applied": None, "funded": None}
        goals["clicked"] = None  # click-through: a person clicked a tracked link of the journey
        counts: dict[tuple[str, str], dict[str, Any]] = {
            (r["step"], r["arm"]): r for r in engine.funnel.arms(jid, goals, since, until)
        }
        for split in splits:
            arms = list(split.arms)
            control = next((a for a in arms if a.holdout), arms[0])
            arm_rows: list[dict[str, Any]] = []
            for arm in arms:
                row = counts.get((split.id, arm.label), {})
                arm_rows.append(
                    {
                        "arm": arm.label,
                        "holdout": arm.holdout,
                        "percent": arm.percent,
                        "leads": int(row.get("leads") or 0),
                        "converted": {g: int(row.get(g) or 0) for g in goals},
                    }
                )
            base = next(r for r in arm_rows if r["arm"] == control.label)
            comparisons = []
            for r in arm_rows:
                if r["arm"] == control.label:
                    continue
                for g in goals:
                    lift = Lift(base["leads"], base["converted"][g], r["leads"], r["converted"][g])
                    comparisons.append({"goal": g, **lift.as_dict(r["arm"], control.label)})
            out.append(
                {
                    "journey_id": jid,
                    "step": split.id,
                    "control": control.label,
                    "goals": {g: (None if w is None else w / 3600) for g, w in goals.items() if g != "clicked"},
                    "arms": arm_rows,
                    "comparisons": comparisons,
                    "uplift_targeting": (
                        _uplift_targeting(engine, uplift_models.get(uplift_kind(jid)), jid, split, goals, until)
                        if control.holdout
                        else None
                    ),
                }
            )
    return {"schema": EXPERIMENTS_SCHEMA, "scope": scope.as_dict(), "splits": out}


def _uplift_targeting(
    engine: Engine,
    entry: dict[str, Any] | None,
    journey_id: str,
    split: SplitStep,
    goals: dict[str, float | None],
    until: str | None,
) -> dict[str, Any] | None:
    """What targeting by the journey's uplift model achieves, measured in the holdout that came
    after it was trained (a new experiment it never learnt from): the lift of messaging among the
    leads it calls persuadable, against the lift among every lead — what messaging at random
    achieves. None while the journey has no uplift model (``entry``: the one in use)."""
    if entry is None:
        return None
    since = entry["at"].isoformat()
    goal = "applied" if "applied" in goals else next(g for g in goals if g != "clicked")
    held = {a.label for a in split.arms if a.holdout}
    by_band: dict[str, list[int]] = {}  # band -> [messaged, converted, held out, converted]
    for r in engine.funnel.arms(journey_id, {goal: goals[goal]}, since, until, band_of=uplift_kind(journey_id)):
        if r["step"] != split.id:
            continue
        counts = by_band.setdefault(r["band"], [0, 0, 0, 0])
        at = 2 if r["arm"] in held else 0
        counts[at] += int(r["leads"] or 0)
        counts[at + 1] += int(r[goal] or 0)

    def lift(rows: list[list[int]], label: str) -> dict[str, Any]:
        m, mc, h, hc = (sum(c[i] for c in rows) for i in range(4))
        return Lift(h, hc, m, mc).as_dict(label, "held out")

    return {
        "model_version": entry["version"],
        "since": since,
        "goal": goal,
        "targeted": lift([c for b, c in by_band.items() if b == PERSUADABLE], "persuadable, messaged"),
        "random": lift(list(by_band.values()), "everyone, messaged"),
        "by_band": {b: lift([c], f"{b}, messaged") for b, c in sorted(by_band.items())},
    }
