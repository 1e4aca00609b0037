"""The weekly model monitoring as the daily review runs it, for a propensity model trained from
the store: drift of the last 30 days' leads against the training sample, and calibration on the
outcomes settled since (predicted against observed per band), recorded as events."""

from __future__ import annotations

import itertools
import random
from datetime import timedelta

from engine.adapters.clock import VirtualClock
from engine.application.screening import models
from tests.conftest import START, MakeEngine
from tests.helpers import lifecycle, young_pro


def test_a_propensity_model_is_measured_weekly_on_recent_leads_and_settled_outcomes(
    make_engine: MakeEngine, clock: VirtualClock
) -> None:
    engine = make_engine()
    rng = random.Random(3)
    channels = ["web_form", "partner_estate_agent", "car_dealer"]
    n = 0
    for day in range(0, 80, 2):  # 20 leads every other day; partner leads apply most
        clock.advance_to(START + timedelta(days=day))
        batch = [young_pro(n + i, source={"channel": rng.choice(channels), "external_id": f"M{n + i}"})
                 for i in range(20)]  # fmt: skip
        n += 20
        engine.leads.capture_leads(batch)
        chance = {"web_form": 0.1, "partner_estate_agent": 0.5, "car_dealer": 0.25}
        applied = [lifecycle("application_submitted", lead, clock.now() + timedelta(hours=1), application_id=f"A{k}")
                   for k, lead in enumerate(batch, n) if rng.random() < chance[lead.source["channel"]]]  # fmt: skip
        engine.leads.record_lifecycle(applied)
        engine.run(until=clock.now() + timedelta(hours=2))
        if day == 40:  # enough history: the model is trained, and the review measures it weekly
            models.train(engine, "propensity", models.dataset_from_store(engine, "propensity"), "analyst")
    registry = engine.leads.registry("propensity")
    measured = [d for d in registry.drift if d["version"] == 1]
    assert 4 <= len(measured) <= 6  # weekly over the 38 days after training
    days = [d["at"] for d in measured]
    assert all((b - a) >= timedelta(days=7) for a, b in itertools.pairwise(days))
    latest = measured[-1]
    assert {p["characteristic"] for p in latest["psi"]} >= {"score", "source_channel"}
    assert latest["calibration"] and sum(b["rows"] for b in latest["calibration"]) >= 50
    history = [m for m in models.monitoring_history(engine) if m["kind"] == "propensity"]
    assert history[-1]["calibration_measured"] and history[-1]["score_psi"] is not None
