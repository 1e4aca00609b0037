"""Uplift from a journey's own holdout, through the store: a journey splits its leads 50/50 into
a holdout, messages the rest, and (by the simulation's truth here) web-form leads apply far more
often when messaged while partner leads are put off by it. ``model train uplift`` learns
that from the split assignments, every lead is scored for the journey, the journey's branch on
``uplift_band`` then messages only the persuadables, and ``report experiments`` measures, in the
holdout that came after the training, the lift among persuadables against everyone's."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path
from uuid import UUID

from engine.adapters.clock import VirtualClock
from engine.application.analytics import experiments_report, scores_report
from engine.application.engine import Engine
from engine.application.screening import models
from engine.domain.journeys.interpreter import journey_facts
from engine.domain.leads.facts import lead_facts
from engine.domain.screening.uplift import DO_NOT_DISTURB, PERSUADABLE, uplift_kind
from tests.builders import done, journey, send
from tests.conftest import START, MakeEngine
from tests.helpers import journeys_folder, lifecycle, young_pro

JOURNEY = "nudge"
NUDGE = journey(
    JOURNEY,
    {"id": "experiment", "split": {"salt": "u-1", "arms": [
        {"label": "messaged", "percent": 50, "next": "who"},
        {"label": "control", "percent": 50, "holdout": True},
    ]}},
    {"id": "who", "branch": {"on": "field", "field": "uplift_band", "cases": [
        {"when": "lost_cause", "next": "done", "label": "messaging changes nothing"},
        {"when": "sure_thing", "next": "done", "label": "applies anyway"},
        {"when": "do_not_disturb", "next": "done", "label": "messaging puts them off"},
    ], "default": "nudge_email"}},
    send("nudge_email", "email", "yp_quick_apply", next="done"),
    done(),
)  # fmt: skip
#: By source channel: (chance to apply if held out, if messaged) — the truth to learn.
TRUTH = {"web_form": (0.05, 0.45), "partner_estate_agent": (0.30, 0.05)}


def capture_wave(engine, first: int, n: int, rng: random.Random, day: int) -> None:  # type: ignore[no-untyped-def]
    """``n`` leads captured on ``day``; each applies within a week as the truth says for its arm."""
    engine.clock.advance_to(START + timedelta(days=day))
    leads = [
        young_pro(first + i, source={"channel": channel, "external_id": f"U{first + i}"})
        for i, channel in enumerate(rng.choice(list(TRUTH)) for _ in range(n))
    ]
    outs = engine.leads.capture_leads(leads)
    engine.run(until=engine.clock.now() + timedelta(hours=1))
    arms = {a["lead_id"]: a["arm"] for a in engine.funnel.split_assignments(JOURNEY)}
    applied = []
    for lead, out in zip(leads, outs, strict=True):
        messaged = arms[str(out.lead_id)] == "messaged"
        if rng.random() < TRUTH[lead.source["channel"]][messaged]:
            applied.append(lifecycle("application_submitted", lead, engine.clock.now() + timedelta(days=2),
                                     application_id=f"A{lead.source['external_id']}"))  # fmt: skip
    engine.clock.advance_to(engine.clock.now() + timedelta(days=2, hours=1))
    engine.leads.record_lifecycle(applied)
    engine.run(until=engine.clock.now())


def test_uplift_is_learnt_from_the_journey_holdout_and_steers_its_branch(
    make_engine: MakeEngine, tmp_path: Path, clock: VirtualClock
) -> None:
    engine = make_engine(settings={"journeys_dir": journeys_folder(tmp_path, nudge=NUDGE)})
    rng = random.Random(11)
    for wave in range(4):
        capture_wave(engine, wave * 150, 150, rng, wave * 4)
    clock.advance_to(clock.now() + timedelta(days=15))  # every outcome window has closed
    engine.refresh_views()

    data = models.dataset_from_store(engine, "uplift", JOURNEY)
    assert data.treatment is not None and 200 < int(data.treatment.sum()) < 400
    assert len(data.rows) == 600 and "source_channel" in data.columns
    doc = models.train(engine, "uplift", data, "analyst", journey=JOURNEY)
    assert doc["journey"] == JOURNEY and doc["leads_rescored"] > 0
    [listed] = [m for m in models.model_list(engine) if m["kind"] == "uplift"]
    assert listed["journey"] == JOURNEY and listed["active"] and listed["qini"] is not None

    # Every lead now holds the journey's uplift score; web-form leads are the persuadables.
    kind = uplift_kind(JOURNEY)
    bands: dict[str, set[str]] = {}
    for lead_id in engine.leads.lead_ids():
        lead = engine.leads.get_lead(lead_id)
        score = lead.score_of(kind)
        assert score is not None and score.reasons and "unit" in score.reasons[0]
        bands.setdefault(lead.source["channel"], set()).add(score.band)
        facts = journey_facts(JOURNEY, lead_facts(lead, engine.clock.now()))
        assert facts["uplift_band"] == score.band and facts["uplift"] == (score.score or 0) / 100
    assert bands == {"web_form": {PERSUADABLE}, "partner_estate_agent": {DO_NOT_DISTURB}}, bands

    # A new wave: only persuadables get the nudge; the others leave at the branch.
    before = {(r["step"], r["outcome"]): r["n"] for r in engine.funnel.messages() if r["journey_id"] == JOURNEY}
    capture_wave(engine, 1000, 150, rng, 40)
    engine.refresh_views()
    after = {(r["step"], r["outcome"]): r["n"] for r in engine.funnel.messages() if r["journey_id"] == JOURNEY}
    new_sends = after.get(("nudge_email", "sent"), 0) - before.get(("nudge_email", "sent"), 0)
    new_assignments = [a for a in engine.funnel.split_assignments(JOURNEY) if a["assigned_at"] >= doc_since(engine)]
    messaged_web = sum(
        1
        for a in new_assignments
        if a["arm"] == "messaged" and engine.leads.get_lead(_uuid(a["lead_id"])).source["channel"] == "web_form"
    )
    assert new_sends == messaged_web > 0

    # The daily review measured the model in use on its journey's recent leads (weekly, recorded).
    [measured] = engine.leads.registry("uplift").drift
    assert measured["version"] == 1 and measured["population"].endswith(f"leads of {JOURNEY} since 2026-03-12")
    assert {p["characteristic"] for p in measured["psi"]} >= {"score", "source_channel"}
    clock.advance_to(clock.now() + timedelta(days=3))
    engine.run(until=clock.now())
    assert len(engine.leads.registry("uplift").drift) == 1  # not again within the week
    clock.advance_to(clock.now() + timedelta(days=5))
    engine.run(until=clock.now())
    assert len(engine.leads.registry("uplift").drift) == 2
    [latest, _] = scores_report(engine)["monitoring"]
    assert latest["kind"] == "uplift" and latest["journey"] == JOURNEY and latest["score_psi"] is not None

    # The experiments report measures the targeting in the holdout since the training.
    [split] = [s for s in experiments_report(engine)["splits"] if s["journey_id"] == JOURNEY]
    targeting = split["uplift_targeting"]
    assert targeting is not None and targeting["model_version"] == 1 and targeting["goal"] == "applied"
    targeted, everyone = targeting["targeted"], targeting["random"]
    assert everyone["arm_leads"] + everyone["control_leads"] == len(new_assignments)
    assert targeted["arm_leads"] + targeted["control_leads"] < len(new_assignments)
    assert set(targeting["by_band"]) == {PERSUADABLE, DO_NOT_DISTURB}


def doc_since(engine: Engine) -> str:
    moment: datetime = engine.leads.registry("uplift").in_use()[uplift_kind(JOURNEY)]["at"]
    return moment.isoformat()


def _uuid(text: str) -> UUID:
    return UUID(text)
