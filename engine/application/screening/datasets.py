"""Training data for the scoring models: rows of features with a 0/1 outcome, their times (for
the later-window holdout) and their id columns; and the column statistics drift compares.
Plain Python and numpy: the use cases build datasets, the scikit-learn adapter trains on them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # numpy is imported when a dataset is built: an engine that only sends never needs it
    import numpy as np
    from numpy.typing import NDArray

from engine.domain.screening.scoring import MISSING, Scored
from engine.domain.shared.errors import TrainingError


@dataclass
class Dataset:
    """Rows of features with a 0/1 target, their times (for the holdout) and their id columns."""

    columns: list[str]
    kinds: dict[str, str]  # column -> "numeric" | "categorical"
    rows: list[dict[str, Any]]
    y: NDArray[np.int_]
    times: list[datetime] | None = None
    ids: list[dict[str, str]] = field(default_factory=list)
    source: str = ""
    #: 1 where the row was messaged, 0 where it was held out (uplift models only).
    treatment: NDArray[np.int_] | None = None

    def matrix(self, rows: Sequence[dict[str, Any]] | None = None) -> NDArray[Any]:
        return to_matrix(rows if rows is not None else self.rows, self.columns, self.kinds)

    def subset(self, index: NDArray[np.int_]) -> Dataset:
        return Dataset(
            self.columns,
            self.kinds,
            [self.rows[i] for i in index],
            self.y[index],
            [self.times[i] for i in index] if self.times else None,
            [self.ids[i] for i in index] if self.ids else [],
            self.source,
            None if self.treatment is None else self.treatment[index],
        )

    def latest(self, window: timedelta) -> Dataset:
        """Only the rows of the last ``window`` before the newest row's time (a rolling window:
        a model retrained on it follows recent outcomes); refused without a time column."""
        if not self.times:
            raise TrainingError(f"{self.source}: a training window needs a time column (--time-column)")
        since = max(self.times) - window
        import numpy as np

        kept = self.subset(np.array([i for i, t in enumerate(self.times) if t >= since], dtype=np.int_))
        kept.source = f"{self.source} (the {window.days} days to {max(self.times).date()})"
        return kept


def to_matrix(rows: Sequence[dict[str, Any]], columns: Sequence[str], kinds: dict[str, str]) -> NDArray[Any]:
    """An object matrix: floats (NaN when missing) for numeric columns, strings for the rest."""
    import numpy as np

    out = np.empty((len(rows), len(columns)), dtype=object)
    for j, col in enumerate(columns):
        numeric = kinds[col] == "numeric"
        for i, row in enumerate(rows):
            v = row.get(col)
            if numeric:
                out[i, j] = as_float(v)
            else:
                out[i, j] = MISSING if v is None or v == "" else str(v)
    return out


def as_float(v: Any) -> float:
    if v is None or v == "":
        return math.nan
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def infer_kinds(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> dict[str, str]:
    """A column is numeric when every non-empty value parses as a number."""
    kinds = {}
    for col in columns:
        values = [r.get(col) for r in rows if r.get(col) not in (None, "")]
        kinds[col] = "numeric" if values and all(not math.isnan(as_float(v)) for v in values) else "categorical"
    return kinds


def distribution(values: Sequence[Any], spec: dict[str, Any]) -> list[int]:
    """Counts of ``values`` over the bins of a reference (numeric: deciles + missing; categorical:
    its categories + other)."""
    if spec["kind"] == "numeric":
        edges = spec["edges"]
        counts = [0] * (len(edges) + 2)
        for v in values:
            x = as_float(v)
            if math.isnan(x):
                counts[-1] += 1
                continue
            counts[next((n for n, e in enumerate(edges) if x <= e), len(edges))] += 1
        return counts
    cats = spec["categories"]
    index = {c: n for n, c in enumerate(cats)}
    counts = [0] * (len(cats) + 1)
    for v in values:
        counts[index.get(MISSING if v in (None, "") else str(v), len(cats))] += 1
    return counts


def score_values(scored: Sequence[Scored]) -> list[float]:
    """What drift compares for the score: points for scorecards, probability otherwise."""
    return [float(s.score) if s.score is not None else s.probability for s in scored]
