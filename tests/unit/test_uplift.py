"""The uplift model on synthetic data whose treatment effect per segment is known: it must rank
the true persuadables first, beat random targeting on the later window's Qini curve by a margin,
put each segment in its band, explain itself in lift points, and refuse a prohibited basis."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from engine.adapters.model_files import ModelLab
from engine.adapters.uplift_modeling import train_uplift
from engine.application.screening.datasets import Dataset, infer_kinds
from engine.domain.screening.uplift import DO_NOT_DISTURB, LOST_CAUSE, PERSUADABLE, SURE_THING, UpliftBands
from engine.domain.shared.errors import ProhibitedFeatureError, TrainingError

T0 = datetime(2026, 1, 1, tzinfo=UTC)
#: Per segment: (chance to apply if held out, if messaged) — the truth the model must find.
TRUTH = {
    "persuadable": (0.05, 0.30),
    "sure": (0.60, 0.60),
    "lost": (0.03, 0.03),
    "disturb": (0.30, 0.12),
}


def synthetic(n: int, seed: int = 3, treated_share: float = 0.7, extra: str | None = None) -> Dataset:
    rng = random.Random(seed)
    rows, y, t, times = [], [], [], []
    for i in range(n):
        segment = rng.choice(list(TRUTH))
        messaged = int(rng.random() < treated_share)
        row = {"segment": segment, "income": round(rng.uniform(5000, 30000), 0)}
        if extra:
            row[extra] = rng.choice(["f", "m"])
        rows.append(row)
        t.append(messaged)
        y.append(int(rng.random() < TRUTH[segment][messaged]))
        times.append(T0 + timedelta(hours=i))
    cols = list(rows[0])
    return Dataset(cols, infer_kinds(rows, cols), rows, np.array(y), times, source="synthetic", treatment=np.array(t))


def test_the_uplift_model_ranks_the_true_persuadables_first_and_beats_random_targeting() -> None:
    data = synthetic(20000)
    trained = train_uplift(data)
    scorer = trained.scorer  # type: ignore[attr-defined]
    probe = [{"segment": s, "income": 15000.0} for s in TRUTH]
    uplift = dict(zip(TRUTH, scorer.uplifts(probe), strict=True))
    assert max(uplift, key=lambda s: uplift[s]) == "persuadable"
    assert min(uplift, key=lambda s: uplift[s]) == "disturb"
    # Within 6 points of the truth: the interactions are shrunk towards a common effect on purpose.
    assert abs(uplift["persuadable"] - 0.25) < 0.06 and abs(uplift["disturb"] + 0.18) < 0.06, uplift
    # Every segment lands in its band.
    bands = dict(zip(TRUTH, (s.band for s in scorer.score_many(probe)), strict=True))
    assert bands == {"persuadable": PERSUADABLE, "sure": SURE_THING, "lost": LOST_CAUSE, "disturb": DO_NOT_DISTURB}
    # The later window's Qini curve: messaging the top 30% by uplift finds well over 30% of the
    # incremental applications random targeting would (the persuadables are a quarter).
    metrics = trained.metrics
    top30 = next(p for p in metrics["curve"] if p["share"] == 0.3)
    assert top30["model"] > 2 * top30["random"] > 0, metrics["curve"]
    assert metrics["gain_top_30"] > 2 and metrics["qini"] > 0.02
    observed = {b["band"]: b["observed_lift"] for b in metrics["bands"]}
    assert observed[PERSUADABLE] > 0.15 and observed[DO_NOT_DISTURB] < -0.05, metrics["bands"]
    # Reasons in lift points: the segment is what moves a persuadable's uplift.
    [persuadable] = scorer.score_many([{"segment": "persuadable", "income": 15000.0}])
    assert persuadable.reasons[0].characteristic == "segment" and persuadable.reasons[0].points > 5
    assert "points of lift" in persuadable.reasons[0].text()
    assert persuadable.score == round(uplift["persuadable"] * 10_000) and persuadable.probability > 0.25


def test_a_saved_uplift_model_loads_and_scores_the_same(tmp_path: object) -> None:
    lab = ModelLab(tmp_path)  # type: ignore[arg-type]
    trained = lab.fit("uplift", synthetic(3000))
    artefact = lab.save(trained, 1)
    loaded = lab.load("uplift", artefact.path.name, artefact.sha256)
    rows = [{"segment": s, "income": 12000.0} for s in TRUTH]
    assert [(s.score, s.band) for s in loaded.score_many(rows)] == [
        (s.score, s.band)
        for s in trained.scorer.score_many(rows)  # type: ignore[attr-defined]
    ]
    assert loaded.bands == trained.scorer.bands  # type: ignore[attr-defined]


def test_uplift_refuses_a_prohibited_basis_and_a_holdout_too_small() -> None:
    with pytest.raises(ProhibitedFeatureError):
        train_uplift(synthetic(3000, extra="gender"))
    with pytest.raises(TrainingError, match="held-out rows"):
        train_uplift(synthetic(600, treated_share=0.97))
    no_treatment = synthetic(600)
    no_treatment.treatment = None
    with pytest.raises(TrainingError, match="who was messaged"):
        train_uplift(no_treatment)


def test_uplift_bands_follow_their_rules() -> None:
    bands = UpliftBands(persuadable_at=0.02, disturb_below=-0.01, sure_thing_at=0.4)
    assert bands.band(0.05, 0.1) == PERSUADABLE
    assert bands.band(-0.02, 0.5) == DO_NOT_DISTURB
    assert bands.band(0.0, 0.5) == SURE_THING
    assert bands.band(0.01, 0.1) == LOST_CAUSE
    assert UpliftBands.of(bands.as_dict()) == bands
