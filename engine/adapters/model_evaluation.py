"""How a trained model did on held-out rows (AUC, Gini, KS, Brier, calibration by band), and
the training sample's spread that drift is measured against."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.metrics import brier_score_loss, roc_auc_score, roc_curve

from engine.application.screening.datasets import as_float, distribution
from engine.domain.screening.scoring import (
    MISSING,
    Scored,
)

# ---- evaluation -----------------------------------------------------------------------------


def evaluate(y: NDArray[Any], scored: Sequence[Scored]) -> dict[str, Any]:
    """AUC, Gini, KS and Brier on held-out rows, and calibration (predicted vs observed) by band."""
    y = np.asarray(y).astype(int)
    probs = np.asarray([s.probability for s in scored], dtype=float)
    out: dict[str, Any] = {"rows": len(y), "positives": int(y.sum())}
    if 0 < y.sum() < len(y):
        auc = float(roc_auc_score(y, probs))
        fpr, tpr, _ = roc_curve(y, probs)
        out.update(auc=round(auc, 4), gini=round(2 * auc - 1, 4), ks=round(float(np.max(tpr - fpr)), 4))
    else:
        out.update(auc=None, gini=None, ks=None)
    out["brier"] = round(float(brier_score_loss(y, probs)), 4) if len(y) else None
    bands: dict[str, list[int]] = {}
    predicted: dict[str, float] = {}
    for s, t in zip(scored, y, strict=True):
        bands.setdefault(s.band, []).append(int(t))
        predicted[s.band] = predicted.get(s.band, 0.0) + s.probability
    out["calibration"] = [
        {
            "band": band,
            "rows": len(ts),
            "predicted": round(predicted[band] / len(ts), 4),
            "observed": round(sum(ts) / len(ts), 4),
        }
        for band, ts in sorted(bands.items())
    ]
    return out


# ---- drift reference: how the training sample was spread ------------------------------------


def reference_of(
    scorer: Any, rows: Sequence[dict[str, Any]], columns: list[str], kinds: dict[str, str]
) -> dict[str, Any]:
    """Bins and counts of the score and of each characteristic in the training sample (for PSI)."""
    scored = scorer.score_many(rows)
    values = [s.score if s.score is not None else s.probability for s in scored]
    ref: dict[str, Any] = {"score": _numeric_reference(values), "features": {}}
    for col in columns:
        column = [r.get(col) for r in rows]
        ref["features"][col] = (
            _numeric_reference([as_float(v) for v in column])
            if kinds[col] == "numeric"
            else _categorical_reference(column)
        )
    return ref


def _numeric_reference(values: Sequence[float]) -> dict[str, Any]:
    present = np.array([v for v in values if not math.isnan(v)], dtype=float)
    edges = sorted({float(q) for q in np.quantile(present, np.linspace(0, 1, 11)[1:-1])}) if present.size else []
    return {"kind": "numeric", "edges": edges, "counts": distribution(values, {"kind": "numeric", "edges": edges})}


def _categorical_reference(values: Sequence[Any]) -> dict[str, Any]:
    texts = [MISSING if v in (None, "") else str(v) for v in values]
    uniq, counts = np.unique(np.array(texts, dtype=object), return_counts=True)
    top = [str(u) for u, _ in sorted(zip(uniq, counts, strict=True), key=lambda t: -t[1])[:20]]
    spec = {"kind": "categorical", "categories": top}
    return {**spec, "counts": distribution(values, spec)}
