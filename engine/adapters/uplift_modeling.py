"""The uplift (persuadability) model with scikit-learn: who applies *because* they were messaged.

Learner: one L2-regularised logistic regression over the propensity features (median-imputed and
standardised numbers, one-hot categories), the treatment flag, and the treatment's interaction
with every feature (an "S-learner with interactions"); a lead's uplift is its predicted chance to
apply if messaged less its chance if held out. The baseline is learnt from every lead of the
experiment, messaged or not, and only the interactions — how the effect differs from lead to
lead — need the holdout; they are penalised harder than the baseline (how much harder is chosen
by cross-validated log-loss), so a small holdout yields a common effect rather than noise.
Chosen over two separate models (a "T-learner", whose held-out model sees only the 10% holdout:
on the demo's 124 held-out leads it invented do-not-disturbs the later window did not bear out)
and over the transformed-outcome trick (which needs a known, equal treatment share). Reason codes
are model-agnostic: the characteristics whose value moves the lead's uplift furthest from what it
would be, on average, with the values the training window had there.

Evaluated like every huoke model on a later time window: the Qini (uplift) curve — incremental
applications when messaging the top x% by predicted uplift, against messaging x% at random.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline

from engine.adapters.model_evaluation import reference_of
from engine.adapters.modeling import Trained, _one_thread, _training, feature_prep, time_split
from engine.application.screening.datasets import Dataset, to_matrix
from engine.domain.screening.scoring import MISSING, Reason, Scored, refuse_prohibited
from engine.domain.screening.uplift import BASIS_POINTS, UPLIFT, UPLIFT_BANDS, UpliftBands
from engine.domain.shared.errors import TrainingError

#: Rows each arm (messaged, held out) needs, and outcomes of each kind, before a model is fitted.
MIN_ARM_ROWS = 50
MIN_ARM_OUTCOMES = 5
#: Reason codes per lead, and the smallest move in uplift (probability) worth naming.
MAX_UPLIFT_REASONS = 3
MIN_REASON_MOVE = 0.001
#: How a column's typical values are summarised (the reference a reason code is measured from).
TYPICAL_QUANTILES = (0.1, 0.3, 0.5, 0.7, 0.9)
TYPICAL_CATEGORIES = 8
#: Fewer held-out leads than this in the evaluation window make its curve too noisy to act on.
MIN_HELD_OUT_TO_READ = 100
#: The shares of leads (ranked by predicted uplift) the Qini curve is read at.
CURVE_SHARES = tuple(round(k / 10, 1) for k in range(1, 11))
#: A sure thing is this many times as likely to apply unprompted as the training window's
#: average lead (and at most ``SURE_THING_CAP`` is ever asked).
SURE_THING_TIMES = 2.0
SURE_THING_CAP = 0.5


class UpliftScorer:
    """Two fitted pipelines behind the scorer interface: rows in; the chance to apply if messaged,
    the uplift (basis points), the band and the reasons out."""

    def __init__(
        self,
        prep: ColumnTransformer,
        model: LogisticRegression,
        columns: list[str],
        kinds: dict[str, str],
        bands: UpliftBands,
        typical: dict[str, list[list[Any]]],
        scale: float,
    ) -> None:
        self.prep, self.model = prep, model
        #: How the treatment's interactions enter the model (chosen at training).
        self.scale = scale
        self.columns, self.kinds = columns, kinds
        self.bands = bands
        #: Each column's spread in the training window: [value, weight] pairs.
        self.typical = typical

    @property
    def features(self) -> list[str]:
        return self.columns

    def _predict(self, matrix: NDArray[Any]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Each row's chance to apply if messaged, and if held out."""
        z = np.asarray(self.prep.transform(matrix), dtype=float)
        ones, zeros = np.ones(len(z)), np.zeros(len(z))
        return (
            self.model.predict_proba(_design(z, ones, self.scale))[:, 1],
            self.model.predict_proba(_design(z, zeros, self.scale))[:, 1],
        )

    def uplifts(self, rows: Sequence[dict[str, Any]]) -> NDArray[np.float64]:
        if not rows:
            return np.zeros(0)
        with _one_thread():
            p1, p0 = self._predict(to_matrix(rows, self.columns, self.kinds))
        return np.asarray(p1 - p0, dtype=float)

    def score_many(self, rows: Sequence[dict[str, Any]]) -> list[Scored]:
        if not rows:
            return []
        matrix = to_matrix(rows, self.columns, self.kinds)
        with _one_thread():
            p1, p0 = self._predict(matrix)
            uplift = p1 - p0
            moves = self._moves(matrix, uplift)
        out = []
        for i in range(len(rows)):
            reasons = self._reasons(matrix[i], moves[i])
            u = float(uplift[i])
            out.append(Scored(float(p1[i]), round(u * BASIS_POINTS), self.bands.band(u, float(p0[i])), reasons))
        return out

    def _moves(self, matrix: NDArray[Any], uplift: NDArray[np.float64]) -> NDArray[np.float64]:
        """Per row and column: how far the column's value moves the uplift from what the lead's
        uplift would be, on average, with the values the training window had there (rows x
        columns, in probability)."""
        moves = np.zeros((len(matrix), len(self.columns)))
        for j, col in enumerate(self.columns):
            expected = np.zeros(len(matrix))
            for value, weight in self.typical[col]:
                other = matrix.copy()
                other[:, j] = value
                p1, p0 = self._predict(other)
                expected += weight * (p1 - p0)
            moves[:, j] = uplift - expected
        return moves

    def _reasons(self, row: NDArray[Any], moves: NDArray[np.float64]) -> tuple[Reason, ...]:
        ranked = sorted(range(len(self.columns)), key=lambda j: -abs(moves[j]))
        chosen = [j for j in ranked if abs(moves[j]) >= MIN_REASON_MOVE][:MAX_UPLIFT_REASONS]
        return tuple(
            Reason(f"U{n}", self.columns[j], _shown(row[j]), float(moves[j]) * 100, 0.0, unit="lift")
            for n, j in enumerate(chosen, 1)
        )


def _shown(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return MISSING
        return str(int(value)) if value.is_integer() else f"{value:.4g}"
    return str(value)


#: The interactions enter scaled by one of these, so their coefficients pay 1/x² the baseline's
#: penalty (64x to 1x): the smaller, the more every lead gets the common effect. The scale is
#: chosen by cross-validated log-loss (five folds of the training window).
INTERACTION_SCALES = (0.125, 0.25, 0.5, 1.0)


def _design(z: NDArray[np.float64], t: NDArray[np.float64], scale: float) -> NDArray[np.float64]:
    """Features, the treatment flag, and the treatment's interaction with each feature."""
    return np.hstack([z, t[:, None], scale * z * t[:, None]])


def _choose_scale(z: NDArray[np.float64], t: NDArray[np.float64], y: NDArray[np.int_]) -> float:
    """The interaction scale whose model predicts held-out folds best (log-loss): as much
    lead-to-lead difference in the effect as the experiment supports, and no more."""
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    strata = 2 * y + t.astype(int)  # every fold keeps its share of each arm and outcome
    best, best_loss = INTERACTION_SCALES[0], math.inf
    for scale in INTERACTION_SCALES:
        design, losses = _design(z, t, scale), []
        for fit, check in folds.split(design, strata):
            model = LogisticRegression(C=1.0, max_iter=5000).fit(design[fit], y[fit])
            losses.append(log_loss(y[check], model.predict_proba(design[check])[:, 1], labels=[0, 1]))
        if float(np.mean(losses)) < best_loss - 1e-6:
            best, best_loss = scale, float(np.mean(losses))
    return best


def check_uplift_trainable(data: Dataset, where: str) -> NDArray[np.int_]:
    """The treatment column, once the data can train an uplift model (else a TrainingError)."""
    refuse_prohibited(data.columns)
    if data.treatment is None:
        raise TrainingError(f"{where}: an uplift model needs who was messaged and who was held out (--treatment)")
    if not data.columns:
        raise TrainingError(f"{where}: no feature columns left to train on")
    t, y = np.asarray(data.treatment, dtype=int), np.asarray(data.y, dtype=int)
    for arm, name in ((1, "messaged"), (0, "held-out")):
        n, positives = int((t == arm).sum()), int(y[t == arm].sum())
        if n < MIN_ARM_ROWS or positives < MIN_ARM_OUTCOMES or n - positives < MIN_ARM_OUTCOMES:
            raise TrainingError(
                f"{where}: {n} {name} rows with {positives} that applied; an uplift model needs at least "
                f"{MIN_ARM_ROWS} {name} rows and {MIN_ARM_OUTCOMES} of each outcome among them "
                "(a journey's holdout grows with every lead it enrols)"
            )
    return t


def _typical(data: Dataset) -> dict[str, list[list[Any]]]:
    """Each column's spread in the training window as a few values with weights: five quantiles of
    a number (equal weights), the most frequent categories (by share, the rest folded in)."""
    matrix = data.matrix()
    out: dict[str, list[list[Any]]] = {}
    for j, col in enumerate(data.columns):
        column = matrix[:, j]
        if data.kinds[col] == "numeric":
            present = np.array([v for v in column if not math.isnan(v)], dtype=float)
            points = np.quantile(present, TYPICAL_QUANTILES) if present.size else [math.nan]
            out[col] = [[float(v), 1 / len(points)] for v in points]
        else:
            values, counts = np.unique(column.astype(str), return_counts=True)
            top = sorted(zip(values, counts, strict=True), key=lambda vc: -vc[1])[:TYPICAL_CATEGORIES]
            kept = sum(int(c) for _, c in top)
            out[col] = [[str(v), int(c) / kept] for v, c in top]
    return out


def train_uplift(data: Dataset, holdout: float = 0.3, bands: UpliftBands | None = None) -> Trained:
    """Fit the two arm models on the earlier window, evaluate the uplift ranking on the later one."""
    messaged = check_uplift_trainable(data, data.source)
    split = time_split(data, holdout)
    train = data.subset(split.train)
    check_uplift_trainable(train, f"{data.source} (its earlier {1 - holdout:.0%})")
    t = np.asarray(train.treatment, dtype=float)
    matrix = train.matrix()
    prep, model = feature_prep(data, min_frequency=5, scale=True), LogisticRegression(C=1.0, max_iter=5000)
    with _one_thread():
        z = np.asarray(prep.fit_transform(matrix), dtype=float)
        scale = _choose_scale(z, t, np.asarray(train.y, dtype=int))
        model.fit(_design(z, t, scale), train.y)
        unprompted = model.predict_proba(_design(z, np.zeros(len(z)), scale))[:, 1]
    bands = bands or UpliftBands()
    sure = min(SURE_THING_CAP, SURE_THING_TIMES * float(np.mean(unprompted)))
    bands = UpliftBands(bands.persuadable_at, bands.disturb_below, round(sure, 4))
    scorer = UpliftScorer(prep, model, data.columns, data.kinds, bands, _typical(train), scale)
    test = data.subset(split.test)
    metrics = evaluate_uplift(test.y, np.asarray(test.treatment, dtype=int), scorer.score_many(test.rows))
    training = _training(data, split, "uplift: logistic regression with treatment interactions (S-learner)")
    training["bands"] = bands.as_dict()
    training["interaction_scale"] = scale
    training["treated_rows"], training["control_rows"] = int(messaged.sum()), int((1 - messaged).sum())
    return Trained(
        UPLIFT, data.columns, data.kinds, Pipeline([("prep", prep), ("model", model)]), scorer, metrics,
        reference_of(scorer, train.rows, data.columns, data.kinds), training,
    )  # fmt: skip


def _incremental(y: NDArray[np.int_], t: NDArray[np.int_]) -> float:
    """Applications messaging caused among these rows, in the messaged group's size: messaged
    applicants less the held-out applicants scaled to as many leads (nan without a holdout)."""
    treated, held = int(t.sum()), int((1 - t).sum())
    if not held or not treated:
        return math.nan
    return float(y[t == 1].sum() - y[t == 0].sum() * treated / held)


def uplift_curve(y: NDArray[np.int_], t: NDArray[np.int_], uplift: NDArray[np.float64]) -> list[dict[str, Any]]:
    """The Qini curve at each share of ``CURVE_SHARES``: incremental applications among the top
    share by predicted uplift (``model``) against the same share taken at random (``random``)."""
    order = np.argsort(-uplift, kind="stable")
    total = _incremental(y, t)
    out = []
    for share in CURVE_SHARES:
        top = order[: max(1, round(share * len(order)))]
        found = _incremental(y[top], t[top])
        out.append(
            {
                "share": share,
                "leads": len(top),
                "model": None if math.isnan(found) else round(found, 2),
                "random": None if math.isnan(total) else round(total * share, 2),
            }
        )
    return out


def _lift(y: NDArray[np.int_], t: NDArray[np.int_]) -> float | None:
    if not t.sum() or not (1 - t).sum():
        return None
    return round(float(y[t == 1].mean() - y[t == 0].mean()), 4)


def evaluate_uplift(y: Any, t: Any, scored: Sequence[Scored]) -> dict[str, Any]:
    """How the uplift ranking did on held-out rows: the Qini curve against random targeting, the
    Qini coefficient (area between the two, per lead), the gain at the top 30%, and per band the
    predicted against the observed lift (messaged rate less held-out rate)."""
    y, t = np.asarray(y, dtype=int), np.asarray(t, dtype=int)
    uplift = np.array([(s.score or 0) / BASIS_POINTS for s in scored], dtype=float)
    curve = uplift_curve(y, t, uplift)
    between = [p["model"] - p["random"] for p in curve if p["model"] is not None and p["random"] is not None]
    top30 = next(p for p in curve if p["share"] == 0.3)
    gain = (
        round(top30["model"] / top30["random"], 2)
        if top30["model"] is not None and top30["random"] not in (None, 0) and top30["random"] > 0
        else None
    )
    bands = []
    for band in UPLIFT_BANDS:
        rows = np.array([i for i, s in enumerate(scored) if s.band == band], dtype=int)
        if not len(rows):
            continue
        bands.append(
            {
                "band": band,
                "rows": len(rows),
                "messaged": int(t[rows].sum()),
                "held_out": int((1 - t[rows]).sum()),
                "predicted_lift": round(float(uplift[rows].mean()), 4),
                "observed_lift": _lift(y[rows], t[rows]),
            }
        )
    held_out = int((1 - t).sum())
    return {
        "rows": len(y),
        "positives": int(y.sum()),
        "messaged": int(t.sum()),
        "held_out": held_out,
        "note": (
            f"only {held_out} held-out leads in this window: the curve is too noisy to act on (wait for "
            f"{MIN_HELD_OUT_TO_READ}+)"
            if held_out < MIN_HELD_OUT_TO_READ
            else ""
        ),
        "observed_lift": _lift(y, t),
        "qini": round(sum(between) / len(between) / len(y), 4) if between and len(y) else None,
        "gain_top_30": gain,
        "curve": curve,
        "bands": bands,
    }
