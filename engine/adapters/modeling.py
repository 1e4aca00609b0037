"""Training and running the two scoring models with scikit-learn (DOMAIN.md: scorecards).

* credit pre-screen: a scikit-learn Pipeline of WOE binning and logistic regression, turned into
  a points table (600 @ 50:1, PDO 20) that the flow scores by lookup;
* propensity: a Pipeline of imputing, one-hot encoding and gradient boosting, kept as a skops file.

Both are evaluated on a later time window than they were trained on, never a random split.
The data they train on is ``application.screening.datasets.Dataset``; the files they are kept in,
``adapters.model_files``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import ThreadpoolController

from engine.adapters.model_evaluation import evaluate, reference_of
from engine.adapters.woe_binning import WoeBinning
from engine.application.screening.datasets import Dataset, to_matrix
from engine.domain.screening.scoring import (
    DEFAULT_SCORE_BANDS,
    FACTOR,
    MISSING,
    OFFSET,
    OTHER,
    Band,
    Bin,
    Characteristic,
    Scorecard,
    Scored,
    band_of,
    refuse_prohibited,
)
from engine.domain.shared.errors import TrainingError

MIN_ROWS = 200
MIN_CLASS = 20
#: The latest share of the training window a model is calibrated on (never fitted on).
CALIBRATION_SHARE = 0.2
#: Isotonic calibration from this many calibration rows; Platt scaling below (scikit-learn's
#: advice: isotonic regression overfits small calibration sets).
ISOTONIC_MIN_ROWS = 1000


# ---- the later-window holdout ---------------------------------------------------------------


@dataclass(frozen=True)
class Split:
    train: NDArray[np.int_]
    test: NDArray[np.int_]
    how: str
    train_window: tuple[str, str] = ("", "")
    test_window: tuple[str, str] = ("", "")


def time_split(data: Dataset, holdout: float = 0.3) -> Split:
    """Train on the earlier rows, test on the later ``holdout`` share (by time, else file order)."""
    n = len(data.rows)
    if data.times:
        order = np.array(sorted(range(n), key=lambda i: data.times[i]))  # type: ignore[index]
        how = "later time window"
    else:
        order = np.arange(n)
        how = "last rows of the file (no time column: order taken as time)"
    cut = round(n * (1 - holdout))
    train, test = order[:cut], order[cut:]
    if data.times:
        t = data.times
        return Split(
            train,
            test,
            how,
            (t[train[0]].isoformat(), t[train[-1]].isoformat()),
            (t[test[0]].isoformat(), t[test[-1]].isoformat()),
        )
    return Split(train, test, how)


def check_trainable(data: Dataset, where: str) -> None:
    refuse_prohibited(data.columns)
    bad = int(data.y.sum())
    if len(data.rows) < MIN_ROWS or bad < MIN_CLASS or len(data.rows) - bad < MIN_CLASS:
        raise TrainingError(
            f"{where}: {len(data.rows)} rows with {bad} positives; a model needs at least {MIN_ROWS} rows "
            f"and {MIN_CLASS} of each outcome"
        )
    if not data.columns:
        raise TrainingError(f"{where}: no feature columns left to train on")


# ---- training -------------------------------------------------------------------------------


@dataclass
class Trained:
    """A trained model, what it was trained on, and how it did on the later window."""

    kind: str
    features: list[str]
    kinds: dict[str, str]
    pipeline: Pipeline
    scorer: Any  # Scorecard (credit) or PipelineScorer (propensity)
    metrics: dict[str, Any]
    reference: dict[str, Any]
    training: dict[str, Any]


#: Models train and score beside workers on small machines, so BLAS and OpenMP get one thread
#: each: HistGradientBoosting otherwise starts a thread per core in every process and they fight
#: (a 2 s test took 30 s under pytest -n 2). The controller is made once; limiting is then cheap.
_THREADS = ThreadpoolController()


def _one_thread() -> Any:
    return _THREADS.limit(limits=1)


def train_credit(data: Dataset, holdout: float = 0.3) -> Trained:
    """A credit pre-screen scorecard: WOE binning + logistic regression, as a points table whose
    probabilities are calibrated out of time (Platt scaling of the score on the latest 20% of the
    training window, which the points were not fitted on: the bad rate moves with the economy,
    the ranking much less), unless that window holds too few outcomes."""
    check_trainable(data, data.source)
    split = time_split(data, holdout)
    fit, recent = _fit_and_calibration(data, split)
    kinds = tuple(data.kinds[c] for c in data.columns)
    pipeline = Pipeline([("woe", WoeBinning(kinds)), ("logit", LogisticRegression(C=1.0, max_iter=1000))])
    how = "WOE binning + logistic regression, points 600 @ 50:1, PDO 20"
    with _one_thread():
        pipeline.fit(fit.matrix(), fit.y)
        card = scorecard_from(pipeline, data.columns)
        if recent is not None:
            scores = np.array([[(s.score or 0) - OFFSET] for s in card.score_many(recent.rows)]) / FACTOR
            platt = LogisticRegression(C=1e6, max_iter=1000).fit(scores, recent.y)
            card = dataclasses.replace(card, calibration=(float(platt.coef_[0][0]), float(platt.intercept_[0])))
            how += f", probabilities calibrated (Platt) on the latest {len(recent.rows)} rows of the training window"
        trained = _trained("credit", data, split, pipeline, card, how)
    trained.training["calibration_rows"] = len(recent.rows) if recent is not None else 0
    return trained


def _fit_and_calibration(data: Dataset, split: Split) -> tuple[Dataset, Dataset | None]:
    """The training window's earlier rows to fit on and its latest ``CALIBRATION_SHARE`` to
    calibrate on; or all of it and None when either part holds too few of an outcome."""
    cut = round(len(split.train) * (1 - CALIBRATION_SHARE))
    fit, recent = data.subset(split.train[:cut]), data.subset(split.train[cut:])
    if _too_few(recent.y) or _too_few(fit.y):
        return data.subset(split.train), None
    return fit, recent


def _trained(kind: str, data: Dataset, split: Split, pipeline: Pipeline, scorer: Any, method: str) -> Trained:
    """Evaluate a fitted model on the held-out later window and keep the training sample's
    distributions as the drift reference."""
    test = data.subset(split.test)
    return Trained(
        kind,
        data.columns,
        data.kinds,
        pipeline,
        scorer,
        evaluate(test.y, scorer.score_many(test.rows)),
        reference_of(scorer, data.subset(split.train).rows, data.columns, data.kinds),
        _training(data, split, method),
    )


def scorecard_from(pipeline: Pipeline, columns: list[str]) -> Scorecard:
    """Turn a fitted WOE + logistic pipeline into points: each bin's points are
    -(beta_j * woe + alpha / n) * factor + offset / n, so the points sum to offset + factor * ln(odds good)."""
    binning: WoeBinning = pipeline.named_steps["woe"]
    logit: LogisticRegression = pipeline.named_steps["logit"]
    alpha, betas, n = float(logit.intercept_[0]), logit.coef_[0], len(columns)

    chars = []
    for j, (name, spec) in enumerate(zip(columns, binning.bins_, strict=True)):
        beta = float(betas[j])

        def make(
            key: str,
            label: str,
            upper: float | None = None,
            cats: tuple[str, ...] = (),
            spec: dict[str, Any] = spec,
            beta: float = beta,
        ) -> Bin:
            woe = spec["woe"][key]
            return Bin(
                label=label,
                points=-(beta * woe + alpha / n) * FACTOR + OFFSET / n,
                woe=woe,
                upper=upper,
                categories=cats,
                count=spec["count"][key],
                bad_rate=spec["bad_rate"][key],
            )

        if spec["kind"] == "numeric":
            edges = spec["edges"]
            bins = tuple(
                make(str(k), label, edges[k] if k < len(edges) else None) for k, label in enumerate(spec["labels"])
            )
            chars.append(Characteristic(name, "numeric", bins, make(MISSING, MISSING)))
        else:
            frequent = spec["labels"][:-1]
            bins = tuple(make(c, c, cats=(c,)) for c in frequent)
            chars.append(Characteristic(name, "categorical", bins, make(MISSING, MISSING), make(OTHER, OTHER)))
    return Scorecard(tuple(chars), DEFAULT_SCORE_BANDS)


class PipelineScorer:
    """A fitted pipeline behind the scorer interface: rows in, probabilities and bands out."""

    def __init__(
        self,
        pipeline: Pipeline,
        columns: list[str],
        kinds: dict[str, str],
        bands: Sequence[Band],
        calibrator: IsotonicRegression | LogisticRegression | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.columns = columns
        self.kinds = kinds
        self.bands = tuple(bands)
        #: Maps the model's raw probability to the rate seen in the latest window before the
        #: test window (None: a model from before calibration, or too few outcomes to calibrate).
        self.calibrator = calibrator

    @property
    def features(self) -> list[str]:
        return self.columns

    def probabilities(self, rows: Sequence[dict[str, Any]]) -> list[float]:
        if not rows:
            return []
        with _one_thread():
            probabilities = self.pipeline.predict_proba(to_matrix(rows, self.columns, self.kinds))[:, 1]
            if isinstance(self.calibrator, LogisticRegression):  # Platt: on the raw log-odds
                probabilities = self.calibrator.predict_proba(_log_odds(probabilities))[:, 1]
            elif self.calibrator is not None:
                probabilities = self.calibrator.predict(probabilities)
        return [float(p) for p in probabilities]

    def score_many(self, rows: Sequence[dict[str, Any]]) -> list[Scored]:
        return [Scored(p, None, band_of(self.bands, p)) for p in self.probabilities(rows)]


def train_propensity(data: Dataset, holdout: float = 0.3) -> Trained:
    """Propensity to apply/respond: impute + one-hot + gradient boosting, calibrated out of time
    (isotonic regression on the latest 20% of the training window, which the model never saw: its
    probabilities follow the recent rate, not the average of the whole window); bands by the
    training window's quantiles. Evaluated on the later test window, as every model."""
    check_trainable(data, data.source)
    split = time_split(data, holdout)
    fit, recent = _fit_and_calibration(data, split)
    prep = feature_prep(data, min_frequency=10)
    model = HistGradientBoostingClassifier(max_iter=150, learning_rate=0.05, max_leaf_nodes=15, random_state=0)
    pipeline = Pipeline([("prep", prep), ("model", model)])
    calibrator: IsotonicRegression | LogisticRegression | None = None
    with _one_thread():
        pipeline.fit(fit.matrix(), fit.y)
        if recent is not None:
            raw = pipeline.predict_proba(recent.matrix())[:, 1]
            if len(recent.rows) >= ISOTONIC_MIN_ROWS:
                calibrator = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(raw, recent.y)
            else:  # isotonic steps overfit a small window (a band predicted 0% that applied 11%)
                calibrator = LogisticRegression(C=1e6, max_iter=1000).fit(_log_odds(raw), recent.y)
    scorer = PipelineScorer(pipeline, data.columns, data.kinds, (), calibrator)
    p_train = np.asarray(scorer.probabilities(data.subset(split.train).rows))
    # Bands by rank in the training window: the top 20% high, the next 30% medium, the rest low.
    scorer.bands = (
        Band("high", float(np.quantile(p_train, 0.8))),
        Band("medium", float(np.quantile(p_train, 0.5))),
        Band("low", float("-inf")),
    )
    how = "impute + one-hot + histogram gradient boosting"
    if recent is not None:
        method = "isotonic" if isinstance(calibrator, IsotonicRegression) else "Platt"
        how += f", calibrated ({method}) on the latest {len(recent.rows)} rows of the training window"
    trained = _trained("propensity", data, split, pipeline, scorer, how)
    trained.training["calibration_rows"] = len(recent.rows) if recent is not None else 0
    return trained


def feature_prep(data: Dataset, min_frequency: int, scale: bool = False) -> ColumnTransformer:
    """The models' preprocessing: numbers median-imputed (and standardised, for a linear model),
    categories one-hot (rare ones, under ``min_frequency`` rows, together; unseen ones too)."""
    numeric = [j for j, c in enumerate(data.columns) if data.kinds[c] == "numeric"]
    categorical = [j for j, c in enumerate(data.columns) if data.kinds[c] != "numeric"]
    impute = SimpleImputer(strategy="median", keep_empty_features=True)
    numbers: Any = Pipeline([("impute", impute), ("scale", StandardScaler())]) if scale else impute
    return ColumnTransformer(
        [
            ("num", numbers, numeric),
            (
                "cat",
                OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=min_frequency, sparse_output=False),
                categorical,
            ),
        ]
    )


def _log_odds(p: NDArray[Any]) -> NDArray[np.float64]:
    q = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    odds: NDArray[np.float64] = np.log(q / (1 - q))[:, None]
    return odds


def _too_few(y: NDArray[Any]) -> bool:
    positives = int(np.asarray(y).sum())
    return positives < MIN_CLASS // 2 or len(y) - positives < MIN_CLASS // 2


def _training(data: Dataset, split: Split, method: str) -> dict[str, Any]:
    return {
        "source": data.source,
        "method": method,
        "rows": len(data.rows),
        "train_rows": len(split.train),
        "test_rows": len(split.test),
        "holdout": split.how,
        "train_window": list(split.train_window),
        "test_window": list(split.test_window),
        "positive_rate": round(float(data.y.mean()), 4),
    }
