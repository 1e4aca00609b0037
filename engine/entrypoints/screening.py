"""Model jobs behind ``huoke model``: read data (store or CSV), train, register, rescore,
evaluate, score a prospect list and measure drift. Returns plain documents for the CLI."""

from __future__ import annotations

import csv
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from engine.adapters.modeling import (
    Dataset,
    ModelFiles,
    Trained,
    TrainingError,
    distribution,
    evaluate,
    infer_kinds,
    score_values,
    train_credit,
    train_propensity,
)
from engine.application.engine import Engine
from engine.domain.leads.facts import lead_facts
from engine.domain.screening.model_registry import check_kind
from engine.domain.screening.scoring import DEFAULT_FEATURES, model_inputs, psi, psi_verdict, refuse_prohibited
from engine.domain.shared.errors import HuokeError
from engine.domain.shared.fields import FIELDS

ID_COLUMNS = ("id", "lead_id", "external_id", "application_id", "loan_id", "customer_id", "name", "phone", "email")
_TRUE, _FALSE = {"1", "true", "yes", "y", "bad"}, {"0", "false", "no", "n", "good"}


class DataError(HuokeError):
    """A CSV cannot be used as it is; every problem names its line and column."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        shown = problems[:12] + ([f"... and {len(problems) - 12} more"] if len(problems) > 12 else [])
        super().__init__("the file cannot be used; nothing was trained:\n  " + "\n  ".join(shown))


def read_csv(
    path: Path,
    target: str | None,
    time_column: str | None = None,
    id_columns: list[str] | None = None,
    exclude: list[str] | None = None,
) -> Dataset:
    """A CSV as a dataset: the target as 0/1, the time column parsed, ids and exclusions set aside.
    Refuses (naming file, line and column) a bad target or time value, or a prohibited column."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            header = list(reader.fieldnames or [])
            raw = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError([f"{path}: cannot read ({e})"]) from None
    problems: list[str] = []
    for needed, what in ((target, "--target"), (time_column, "--time-column")):
        if needed and needed not in header:
            problems.append(f"{path}:1: {what} column {needed!r} is not in the header ({', '.join(header)})")
    for col in [*(id_columns or []), *(exclude or [])]:
        if col not in header:
            problems.append(f"{path}:1: column {col!r} is not in the header")
    if problems:
        raise DataError(problems)
    ids = [c for c in header if c in (id_columns or []) or (id_columns is None and c.lower() in ID_COLUMNS)]
    features = [c for c in header if c not in {target, time_column, *ids, *(exclude or [])}]
    refuse_prohibited(features)
    y: list[int] = []
    times: list[datetime] = []
    for line, row in enumerate(raw, 2):
        if target:
            value = (row.get(target) or "").strip().lower()
            if value not in _TRUE | _FALSE:
                problems.append(f"{path}:{line}: {target} is {row.get(target)!r}; use 1/0, yes/no or bad/good")
            y.append(int(value in _TRUE))
        if time_column:
            try:
                times.append(datetime.fromisoformat((row.get(time_column) or "").strip()))
            except ValueError:
                problems.append(f"{path}:{line}: {time_column} is {row.get(time_column)!r}, not a date like 2026-03-01")
    rows: list[dict[str, Any]] = [{c: (r.get(c) or "").strip() for c in features} for r in raw]
    kinds = infer_kinds(rows, features)
    for col in features:
        distinct = len({r[col] for r in rows if r[col]})
        if kinds[col] == "categorical" and len(rows) >= 50 and distinct > 0.5 * len(rows):
            problems.append(
                f"{path}: column {col!r} has {distinct} distinct values in {len(rows)} rows: it looks like an "
                "identifier or free text; name it with --id-column or leave it out with --exclude"
            )
    if problems:
        raise DataError(problems)
    if times and any(t.tzinfo is None for t in times) and any(t.tzinfo is not None for t in times):
        raise DataError([f"{path}: {time_column} mixes times with and without a time zone"])
    for r in rows:
        for col in features:
            if kinds[col] == "numeric" and r[col] != "":
                r[col] = float(r[col])
    return Dataset(
        features,
        kinds,
        rows,
        np.array(y, dtype=int),
        times or None,
        [{c: r.get(c) or "" for c in ids} for r in raw],
        str(path),
    )


def dataset_from_store(engine: Engine, kind: str) -> Dataset:
    """Outcomes from the lead history (see Leads.training_rows), on the default features."""
    features = list(DEFAULT_FEATURES[check_kind(kind)])
    data = engine.leads.training_rows(kind, features, engine.clock.now())
    used = [f for f in features if any(f in r for r in data.rows)]
    return Dataset(
        used,
        infer_kinds(data.rows, used),
        data.rows,
        np.array(data.outcomes, dtype=int),
        data.times,
        data.ids,
        data.description,
    )


def fit(kind: str, data: Dataset) -> Trained:
    """Train (and evaluate on the later window) without registering anything."""
    trainer: Callable[[Dataset], Trained] = train_credit if check_kind(kind) == "credit" else train_propensity
    return trainer(data)


def train(
    engine: Engine,
    kind: str,
    data: Dataset,
    trained_by: str,
    rescore: bool = True,
    progress: Any = None,
    trained: Trained | None = None,
) -> dict[str, Any]:
    """Train, save the file, register the version, and (by default) rescore every lead with it."""
    trained = trained or fit(kind, data)
    registry = engine.leads.registry(kind)
    version = len(registry.versions) + 1
    artefact = _files(engine).save(trained, version)
    number = engine.leads.register_model(
        kind,
        trained_by,
        features=trained.features,
        kinds=trained.kinds,
        metrics=trained.metrics,
        training=trained.training,
        reference=trained.reference,
        artefact=artefact.path.name,
        sha256=artefact.sha256,
    )
    unknown = [f for f in trained.features if f not in FIELDS and f != "loan_to_income"]
    rescored = engine.leads.score_all(progress=progress) if rescore else 0
    return {
        "kind": kind,
        "version": number,
        "features": trained.features,
        "metrics": trained.metrics,
        "training": trained.training,
        "artefact": str(artefact.path),
        "sha256": artefact.sha256,
        "leads_rescored": rescored,
        "warnings": [f"{f} is not a lead fact: leads in the flow score it as missing" for f in unknown],
    }


def model_list(engine: Engine) -> list[dict[str, Any]]:
    out = []
    for kind in ("propensity", "credit"):
        registry = engine.leads.registry(kind)
        for n, v in enumerate(registry.versions, 1):
            out.append(
                {
                    "kind": kind,
                    "version": v["version"],
                    "active": n == len(registry.versions),
                    "trained_at": v["at"].isoformat(),
                    "trained_by": v["trained_by"],
                    "source": v["training"].get("source", ""),
                    "rows": v["training"].get("rows"),
                    "features": v["features"],
                    "auc": v["metrics"].get("auc"),
                    "gini": v["metrics"].get("gini"),
                    "ks": v["metrics"].get("ks"),
                    "brier": v["metrics"].get("brier"),
                    "artefact": v["artefact"],
                    "sha256": v["sha256"],
                }
            )
    return out


def _load(engine: Engine, kind: str, version: int | None) -> tuple[dict[str, Any], Any]:
    entry = engine.leads.registry(kind).get(version)
    return entry, _files(engine).load(kind, entry["artefact"], entry["sha256"])


def _files(engine: Engine) -> ModelFiles:
    files = engine.leads.models
    if not isinstance(files, ModelFiles):
        raise HuokeError("this engine was built without model files")
    return files


def evaluate_version(engine: Engine, kind: str, version: int | None, data: Dataset | None) -> dict[str, Any]:
    """Metrics of a registered version on data it was not trained on: by default the store's
    outcomes after its training window (out of time); or a CSV with outcomes."""
    entry, scorer = _load(engine, kind, version)
    data = data or dataset_from_store(engine, kind)
    note = f"all {len(data.rows)} rows of {data.source}"
    train_end = (entry["training"].get("train_window") or ["", ""])[1]
    if data.times and train_end:
        end = datetime.fromisoformat(train_end)
        later = np.array([i for i, t in enumerate(data.times) if _comparable(t, end) > end], dtype=int)
        if len(later):
            data = data.subset(later)
            note = f"{len(later)} rows after the training window (ended {train_end[:10]}) of {data.source}"
    scored = scorer.score_many(data.rows)  # a scorer reads its own features and ignores other columns
    if not scored:
        raise TrainingError(f"{data.source}: no rows to evaluate on")
    return {
        "kind": kind,
        "version": entry["version"],
        "data": note,
        "metrics": evaluate(data.y, scored),
        "at_training": entry["metrics"],
    }


def _comparable(t: datetime, ref: datetime) -> datetime:
    if (t.tzinfo is None) != (ref.tzinfo is None):
        return t.replace(tzinfo=ref.tzinfo)
    return t


def score_file(
    engine: Engine, kind: str, path: Path, out: Path, id_columns: list[str] | None, version: int | None = None
) -> dict[str, Any]:
    """Score a prospect list without importing it: id columns, probability, score, band, reasons."""
    entry, scorer = _load(engine, kind, version)
    data = read_csv(path, None, None, id_columns, [])
    missing = [f for f in entry["features"] if f not in data.columns]
    scored = scorer.score_many(data.rows)
    id_cols = list(data.ids[0]) if data.ids else []
    tmp = out.with_suffix(out.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*id_cols, "probability", "score", "band", "reasons"])
        for ids, s in zip(data.ids, scored, strict=True):
            writer.writerow(
                [
                    *(ids.get(c, "") for c in id_cols),
                    f"{s.probability:.4f}",
                    "" if s.score is None else s.score,
                    s.band,
                    "; ".join(r.text() for r in s.reasons),
                ]
            )
    tmp.replace(out)
    bands: dict[str, int] = {}
    for s in scored:
        bands[s.band] = bands.get(s.band, 0) + 1
    return {
        "kind": kind,
        "version": entry["version"],
        "rows": len(scored),
        "out": str(out),
        "bands": dict(sorted(bands.items())),
        "missing_features": missing,
    }


def drift(engine: Engine, kind: str, version: int | None, data: Dataset | None) -> dict[str, Any]:
    """PSI of the score and of each characteristic: the population now (leads in the store, or a
    CSV) against the training sample."""
    entry, scorer = _load(engine, kind, version)
    if data is None:
        now = engine.clock.now()
        rows = [
            model_inputs(lead_facts(engine.leads.get_lead(i), now), entry["features"]) for i in engine.leads.lead_ids()
        ]
        source = f"{len(rows)} leads in the store"
    else:
        rows, source = data.rows, f"{len(data.rows)} rows of {data.source}"
    if not rows:
        raise HuokeError("no rows to measure drift on")
    ref = entry["reference"]
    values = score_values(scorer.score_many(rows))
    items: list[tuple[str, Any, list[Any]]] = [("score", ref["score"], list(values))]
    items += [(f, ref["features"][f], [r.get(f) for r in rows]) for f in entry["features"] if f in ref["features"]]
    out = []
    for name, spec, column in items:
        value = psi(spec["counts"], distribution(column, spec))
        out.append({"characteristic": name, "psi": round(value, 4), "verdict": psi_verdict(value)})
    return {"kind": kind, "version": entry["version"], "population": source, "psi": out}
