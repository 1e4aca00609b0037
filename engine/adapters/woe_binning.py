"""Weight-of-evidence binning as a scikit-learn transformer: the first step of the credit
scorecard's pipeline (numbers by quantiles, categories by frequency; each value replaced by its
bin's weight of evidence)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.base import BaseEstimator, TransformerMixin

from engine.domain.screening.scoring import (
    MISSING,
    OTHER,
)


class WoeBinning(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Bins each column (numeric by quantiles, categorical by frequent values) and replaces each
    value by its bin's weight of evidence, ln(share of goods / share of bads)."""

    def __init__(self, kinds: tuple[str, ...] = (), max_bins: int = 5, min_share: float = 0.05) -> None:
        self.kinds = kinds
        self.max_bins = max_bins
        self.min_share = min_share

    def fit(self, X: NDArray[Any], y: NDArray[Any]) -> WoeBinning:
        y = np.asarray(y).astype(int)
        self.bins_: list[dict[str, Any]] = []
        for j, kind in enumerate(self.kinds):
            col = X[:, j]
            if kind == "numeric":
                values = col.astype(float)
                present = values[~np.isnan(values)]
                qs = np.quantile(present, np.linspace(0, 1, self.max_bins + 1)[1:-1]) if present.size else []
                edges = sorted({float(q) for q in qs})
                labels = _numeric_labels(edges)
                keys = [_numeric_key(v, edges) for v in values]
                spec: dict[str, Any] = {"kind": kind, "edges": edges, "labels": labels}
            else:
                texts = col.astype(str)
                values_, counts = np.unique(texts[texts != MISSING], return_counts=True)
                frequent = [str(v) for v, c in zip(values_, counts, strict=True) if c >= self.min_share * len(texts)]
                labels = [*frequent, OTHER]
                keys = [t if t == MISSING or t in frequent else OTHER for t in texts]
                spec = {"kind": kind, "labels": labels}
            names = [str(n) for n in range(len(labels))] if kind == "numeric" else list(labels)
            spec["woe"], spec["count"], spec["bad_rate"] = _woe(keys, y, [*names, MISSING])
            self.bins_.append(spec)
        return self

    def keys_for(self, X: NDArray[Any]) -> list[list[str]]:
        out = []
        for j, spec in enumerate(self.bins_):
            col = X[:, j]
            if spec["kind"] == "numeric":
                out.append([_numeric_key(v, spec["edges"]) for v in col.astype(float)])
            else:
                labels = set(spec["labels"])
                out.append([t if t == MISSING or t in labels else OTHER for t in col.astype(str)])
        return out

    def transform(self, X: NDArray[Any]) -> NDArray[np.float64]:
        keys = self.keys_for(X)
        out = np.empty((X.shape[0], len(self.bins_)), dtype=float)
        for j, spec in enumerate(self.bins_):
            woe = spec["woe"]
            out[:, j] = [woe[k] for k in keys[j]]
        return out


def _numeric_key(v: float, edges: list[float]) -> str:
    if math.isnan(v):
        return MISSING
    for n, e in enumerate(edges):
        if v <= e:
            return str(n)
    return str(len(edges))


def _numeric_labels(edges: list[float]) -> list[str]:
    bounds = [-math.inf, *edges, math.inf]
    return [_interval(bounds[n], bounds[n + 1]) for n in range(len(bounds) - 1)]


def _interval(lo: float, hi: float) -> str:
    if math.isinf(lo):
        return f"<= {hi:g}"
    if math.isinf(hi):
        return f"> {lo:g}"
    return f"{lo:g} – {hi:g}"


def _woe(
    keys: list[str], y: NDArray[Any], names: list[str]
) -> tuple[dict[str, float], dict[str, int], dict[str, float]]:
    """Weight of evidence per bin, ln(share of goods / share of bads), with +0.5 smoothing so an
    empty bin stays finite; also each bin's count and bad rate."""
    pos = {k: n for n, k in enumerate(names)}
    goods, bads = np.zeros(len(names)), np.zeros(len(names))
    for k, t in zip(keys, y, strict=True):
        (bads if t else goods)[pos[k]] += 1
    g, b = goods.sum(), bads.sum()
    woe = np.log((goods + 0.5) / (g + 0.5 * len(names))) - np.log((bads + 0.5) / (b + 0.5 * len(names)))
    totals = goods + bads
    return (
        {k: float(woe[i]) for k, i in pos.items()},
        {k: int(totals[i]) for k, i in pos.items()},
        {k: float(bads[i] / max(totals[i], 1)) for k, i in pos.items()},
    )
