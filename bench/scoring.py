"""Scoring in the flow against raw batched ``predict_proba`` on the same pipeline, same run.

The flow: Leads.score_all — load each lead, build its model inputs from its facts, score the
batch, record a Lead.Scored event per lead and save (1,000 leads per batch). The raw baseline:
the fitted scikit-learn pipeline's predict_proba on the same inputs, 1,000 rows per call.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from demo.data import CHANNEL_LIFT, generate
from demo.runner import write_back_book
from engine.adapters.clock import VirtualClock
from engine.adapters.lead_rows import LeadRow
from engine.adapters.model_data import read_csv
from engine.application.importing import RowError
from engine.application.screening import models
from engine.application.screening.datasets import Dataset, infer_kinds, to_matrix
from engine.bootstrap import bootstrap, init_database
from engine.domain.leads.facts import lead_facts
from engine.domain.screening.features import DEFAULT_FEATURES, model_inputs
from engine.settings import Settings

START = datetime(2026, 3, 2, tzinfo=UTC)


def _raw_rate(pipeline: Any, rows: list[dict[str, Any]], columns: list[str], kinds: dict[str, str]) -> float:
    matrix = to_matrix(rows, columns, kinds)
    started = time.perf_counter()
    for i in range(0, len(rows), 1000):
        pipeline.predict_proba(matrix[i : i + 1000])
    return len(rows) / (time.perf_counter() - started)


def scoring_rates(folder: Path, n: int) -> dict[str, float]:
    """Leads/s scored in the flow and rows/s of raw batched predict_proba, for both models."""
    s = Settings(
        data_dir=folder / "scoring",
        outbox_dir=folder / "scoring-out",
        database_url="",
        email_transport="outbox",
    )
    init_database(s)
    engine = bootstrap(s, VirtualClock(START))
    try:
        leads, _ = generate(n, START, capture_days=30, sim_days=30, seed=11)
        commands = []
        for i, r in enumerate(leads):
            try:
                commands.append(LeadRow.model_validate(r).to_command("CN", engine.journeys.default_tz, f"bench:{i}"))
            except RowError:
                continue  # the sample has a few invalid rows on purpose
        for i in range(0, len(commands), 500):
            engine.leads.capture_leads(commands[i : i + 500])
        book = write_back_book(folder, START, 20_000)
        credit = read_csv(book, "bad", "funded_at", ["loan_id"])
        # Propensity learns from the leads themselves with a simulated response.
        rng = random.Random(3)
        features = list(DEFAULT_FEATURES["propensity"])
        ids = engine.leads.lead_ids()
        rows = [model_inputs(lead_facts(engine.leads.get_lead(i), START), features) for i in ids]
        used = [f for f in features if any(f in r for r in rows)]
        y = [int(rng.random() < 0.2 * CHANNEL_LIFT.get(str(r.get("source_channel")), 1.0)) for r in rows]
        propensity = Dataset(used, infer_kinds(rows, used), rows, np.array(y), None, [], "bench")
        out: dict[str, float] = {"leads": float(len(ids))}
        for kind, data in (("credit", credit), ("propensity", propensity)):
            trained = models.lab_of(engine).fit(kind, data)
            models.train(engine, kind, data, "bench", rescore=False, trained=trained)
            started = time.perf_counter()
            scored = engine.leads.score_all(batch_size=1000)
            out[f"{kind}_flow"] = scored / (time.perf_counter() - started)
            inputs = [model_inputs(lead_facts(engine.leads.get_lead(i), START), trained.features) for i in ids]
            out[f"{kind}_raw"] = _raw_rate(trained.pipeline, inputs, trained.features, trained.kinds)  # type: ignore[attr-defined]
            started = time.perf_counter()
            for i in range(0, len(inputs), 1000):
                trained.scorer.score_many(inputs[i : i + 1000])  # type: ignore[attr-defined]
            out[f"{kind}_model_only"] = len(inputs) / (time.perf_counter() - started)
        return out
    finally:
        engine.close()
