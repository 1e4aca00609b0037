"""Model use cases behind ``huoke model``: build training data from the lead history, train and
register a version (and rescore every lead), list versions, evaluate out of time, score a
prospect list and measure drift. Training and model files are the ``ModelLab`` port's."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from engine.application.engine import Engine
from engine.application.ports import ModelLab, TrainedModel
from engine.application.screening.datasets import Dataset, distribution, infer_kinds, score_values
from engine.application.screening.training import RESPONSE_WINDOW_DAYS, training_rows, uplift_rows
from engine.domain.journeys.journey import SplitStep
from engine.domain.leads.facts import lead_facts
from engine.domain.screening.features import DEFAULT_FEATURES, model_inputs
from engine.domain.screening.model_registry import MODEL_KINDS, calibration_warnings, check_kind, score_kind
from engine.domain.screening.scoring import psi, psi_verdict
from engine.domain.screening.uplift import UPLIFT
from engine.domain.shared.errors import HuokeError, TrainingError
from engine.domain.shared.fields import FIELDS


def lab_of(engine: Engine) -> ModelLab:
    """The engine's model lab (an engine built without model files cannot train)."""
    lab = engine.leads.models
    if not isinstance(lab, ModelLab):
        raise HuokeError("this engine was built without model files")
    return lab


def dataset_from_store(engine: Engine, kind: str, journey: str | None = None) -> Dataset:
    """Outcomes from the lead history (see ``training.training_rows``), on the default features;
    for an uplift model, the random experiment of ``journey`` (``training.uplift_rows``), on the
    propensity features."""
    import numpy as np  # when a model is trained or checked, not on every import

    if check_kind(kind) == UPLIFT:
        held_out = holdout_arms(engine, journey)
        features = list(DEFAULT_FEATURES["propensity"])
        assignments = engine.funnel.split_assignments(journey or "")
        data = uplift_rows(engine.leads, assignments, held_out, features, engine.clock.now())
    else:
        features = list(DEFAULT_FEATURES[kind])
        data = training_rows(engine.leads, kind, features, engine.clock.now())
    used = [f for f in features if any(f in r for r in data.rows)]
    return Dataset(
        used,
        infer_kinds(data.rows, used),
        data.rows,
        np.array(data.outcomes, dtype=int),
        data.times,
        data.ids,
        data.description + (f", journey {journey}" if journey else ""),
        None if data.treatment is None else np.array(data.treatment, dtype=int),
    )


def holdout_arms(engine: Engine, journey: str | None) -> set[tuple[str, str]]:
    """The (split step, arm) pairs of a published journey's random holdouts: who was never
    messaged. Refused for a journey that is not published or has no holdout."""
    if not journey:
        raise HuokeError("an uplift model is trained for one journey: give --journey ID")
    engine.journeys.refresh_live()
    live = engine.journeys.live.get(journey)
    if live is None:
        known = ", ".join(sorted(engine.journeys.live)) or "none"
        raise HuokeError(f"journey {journey!r} is not published (published: {known})")
    held = {
        (step.id, arm.label)
        for step in live.journey.steps.values()
        if isinstance(step, SplitStep)
        for arm in step.arms
        if arm.holdout
    }
    if not held:
        raise HuokeError(
            f"journey {journey!r} has no random holdout (a split arm with holdout: true): an uplift model "
            "learns from leads who were not messaged"
        )
    return held


def train(
    engine: Engine,
    kind: str,
    data: Dataset,
    trained_by: str,
    rescore: bool = True,
    progress: Any = None,
    trained: TrainedModel | None = None,
    journey: str | None = None,
) -> dict[str, Any]:
    """Train, save the file, register the version, and (by default) rescore every lead with it.
    An uplift model is for one journey (``journey``): its leads' ``uplift_band`` comes from it."""
    lab = lab_of(engine)
    if kind == UPLIFT:
        holdout_arms(engine, journey)  # a published journey with a holdout, before any training
    trained = trained or lab.fit(kind, data)
    if kind == UPLIFT:
        trained.training["journey"] = journey
    artefact = lab.save(trained, engine.leads.registry(kind).next_version)
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
        "journey": journey if kind == UPLIFT else None,
        "features": trained.features,
        "metrics": trained.metrics,
        "training": trained.training,
        "artefact": str(artefact.path),
        "sha256": artefact.sha256,
        "leads_rescored": rescored,
        "warnings": [f"{f} is not a lead fact: leads in the flow score it as missing" for f in unknown],
    }


def roll_back(engine: Engine, kind: str, to: int, by: str, progress: Any = None) -> dict[str, Any]:
    """Use an earlier version again: it is registered as the newest version (same file, same
    features and metrics, ``training.restored_from`` naming it), so the registry's history stays
    append-only and says who went back when; then every lead is rescored with it."""
    entry, _ = _load(engine, kind, to)  # its file must still be there and unchanged
    newest = engine.leads.registry(kind).in_use()[score_kind(kind, entry)]["version"]
    if to == newest:
        raise HuokeError(f"{kind} v{to} is the version in use already")
    number = engine.leads.register_model(
        kind,
        by,
        features=entry["features"],
        kinds=entry["kinds"],
        metrics=entry["metrics"],
        training={**entry["training"], "restored_from": to, "replaced": newest},
        reference=entry["reference"],
        artefact=entry["artefact"],
        sha256=entry["sha256"],
    )
    return {"kind": kind, "version": number, "restored_from": to, "replaced": newest,
            "leads_rescored": engine.leads.score_all(progress=progress)}  # fmt: skip


def model_list(engine: Engine) -> list[dict[str, Any]]:
    out = []
    for kind in MODEL_KINDS:
        registry = engine.leads.registry(kind)
        in_use = {entry["version"] for entry in registry.in_use().values()}
        for v in registry.versions:
            out.append(
                {
                    "kind": kind,
                    "journey": v["training"].get("journey"),
                    "version": v["version"],
                    "active": v["version"] in in_use,
                    "trained_at": v["at"].isoformat(),
                    "trained_by": v["trained_by"],
                    "source": v["training"].get("source", ""),
                    "restored_from": v["training"].get("restored_from"),
                    "rows": v["training"].get("rows"),
                    "features": v["features"],
                    "auc": v["metrics"].get("auc"),
                    "gini": v["metrics"].get("gini"),
                    "ks": v["metrics"].get("ks"),
                    "brier": v["metrics"].get("brier"),
                    "qini": v["metrics"].get("qini"),
                    "gain_top_30": v["metrics"].get("gain_top_30"),
                    "calibration": v["metrics"].get("calibration", []),
                    # Bands whose later-window probability is more than 20% off what happened.
                    "calibration_warnings": calibration_warnings(v["metrics"].get("calibration", [])),
                    "artefact": v["artefact"],
                    "sha256": v["sha256"],
                }
            )
    return out


def _load(engine: Engine, kind: str, version: int | None) -> tuple[dict[str, Any], Any]:
    entry = engine.leads.registry(kind).get(version)
    return entry, lab_of(engine).load(kind, entry["artefact"], entry["sha256"])


def evaluate_version(engine: Engine, kind: str, version: int | None, data: Dataset | None) -> dict[str, Any]:
    """Metrics of a registered version on data it was not trained on: by default the store's
    outcomes after its training window (out of time); or a CSV with outcomes."""
    import numpy as np  # when a model is trained or checked, not on every import

    entry, scorer = _load(engine, kind, version)
    data = data or dataset_from_store(engine, kind, entry["training"].get("journey"))
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
    if kind == UPLIFT:
        if data.treatment is None:
            raise TrainingError(f"{data.source}: an uplift model is evaluated on who was messaged (--treatment)")
        metrics = lab_of(engine).evaluate_uplift(data.y, data.treatment, scored)
    else:
        metrics = lab_of(engine).evaluate(data.y, scored)
    return {
        "kind": kind,
        "version": entry["version"],
        "data": note,
        "metrics": metrics,
        "at_training": entry["metrics"],
    }


def _comparable(t: datetime, ref: datetime) -> datetime:
    if (t.tzinfo is None) != (ref.tzinfo is None):
        return t.replace(tzinfo=ref.tzinfo)
    return t


def score_dataset(
    engine: Engine, kind: str, data: Dataset, version: int | None = None
) -> tuple[dict[str, Any], list[str], list[list[Any]]]:
    """Score a prospect list without importing it: the summary document, and the header and rows
    of the scores file (id columns, probability, score, band, reasons)."""
    entry, scorer = _load(engine, kind, version)
    missing = [f for f in entry["features"] if f not in data.columns]
    scored = scorer.score_many(data.rows)
    id_cols = list(data.ids[0]) if data.ids else []
    rows = [
        [
            *(ids.get(c, "") for c in id_cols),
            f"{s.probability:.4f}",
            "" if s.score is None else s.score,
            s.band,
            "; ".join(r.text() for r in s.reasons),
        ]
        for ids, s in zip(data.ids, scored, strict=True)
    ]
    bands: dict[str, int] = {}
    for s in scored:
        bands[s.band] = bands.get(s.band, 0) + 1
    doc = {
        "kind": kind,
        "version": entry["version"],
        "rows": len(scored),
        "bands": dict(sorted(bands.items())),
        "missing_features": missing,
    }
    return doc, [*id_cols, "probability", "score", "band", "reasons"], rows


def drift(
    engine: Engine, kind: str, version: int | None, data: Dataset | None, since: datetime | None = None
) -> dict[str, Any]:
    """PSI of the score and of each characteristic: the population now (leads in the store — with
    ``since``, those captured since then — or a CSV) against the training sample."""
    entry, scorer = _load(engine, kind, version)
    if data is None:
        now = engine.clock.now()
        journey = entry["training"].get("journey")
        if journey:  # an uplift model serves its journey's leads: those assigned to its experiment
            ids = [UUID(a["lead_id"]) for a in engine.funnel.split_assignments(journey)
                   if since is None or datetime.fromisoformat(a["assigned_at"]) >= since]  # fmt: skip
        elif since is not None:  # the leads captured since (the view finds them; no log scan)
            ids = [UUID(i) for i in engine.funnel.captured_between(_day(engine, since), limit=MONITOR_SAMPLE)]
        else:
            ids = list(engine.leads.lead_ids())
        leads = [engine.leads.get_lead(i) for i in dict.fromkeys(ids)]
        leads = [lead for lead in leads if not lead.erased and (journey or since is None or lead.captured_at >= since)]
        rows = [model_inputs(lead_facts(lead, now), entry["features"]) for lead in leads]
        whose = f"leads of {journey}" if journey else "leads in the store"
        source = f"{len(rows)} {whose}" + (f" since {since.date()}" if since else "")
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
    return {"kind": kind, "version": entry["version"], "population": source, "leads": len(rows), "psi": out}


#: How often the worker measures each model in use, the population it measures (leads captured
#: in the last ``MONITOR_WINDOW``) and the fewest leads worth measuring.
MONITOR_EVERY = timedelta(days=7)
MONITOR_WINDOW = timedelta(days=30)
MONITOR_MIN_LEADS = 50
#: The most recent leads a measurement reads (PSI on a sample of the newest is as telling).
MONITOR_SAMPLE = 5000
RESPONSE_WINDOW = timedelta(days=RESPONSE_WINDOW_DAYS)


def monitor(engine: Engine, force: bool = False) -> list[dict[str, Any]]:
    """The scheduled model monitoring (the daily review runs it; ``huoke model monitor`` now):
    each model in use whose drift was last measured ``MONITOR_EVERY`` ago or never is measured on
    the leads captured in the last ``MONITOR_WINDOW`` (PSI against its training sample), and a
    propensity model also on the outcomes settled since (calibration by band); each measurement is
    recorded on its registry (``ModelRegistry.DriftMeasured``). Returns what was measured."""
    if engine.leads.models is None:
        return []
    now = engine.clock.now()
    out = []
    for kind in MODEL_KINDS:
        registry = engine.leads.registry(kind)
        for entry in registry.in_use().values():
            last = registry.last_measured(entry["version"])
            if not entry["reference"].get("score") or (not force and last and now - last < MONITOR_EVERY):
                continue  # a model registered without a training sample has nothing to drift from
            try:
                doc = drift(engine, kind, entry["version"], None, since=now - MONITOR_WINDOW)
            except HuokeError:  # too few leads yet, or its file is gone: nothing to record
                continue
            if doc["leads"] < MONITOR_MIN_LEADS:
                continue
            calibration = _recent_calibration(engine, kind, entry["version"], now) if kind == "propensity" else []
            engine.leads.record_drift(kind, entry["version"], population=doc["population"], leads=doc["leads"],
                                      psi=doc["psi"], calibration=calibration)  # fmt: skip
            out.append({**doc, "calibration": calibration, "journey": entry["training"].get("journey")})
    return out


def _recent_calibration(engine: Engine, kind: str, version: int, now: datetime) -> list[dict[str, Any]]:
    """Predicted against observed per band on the outcomes settled in the last window (leads
    captured in the ``MONITOR_WINDOW`` before their response window closed)."""
    import numpy as np  # when a model is trained or checked, not on every import

    entry, scorer = _load(engine, kind, version)
    since, until = now - MONITOR_WINDOW - RESPONSE_WINDOW, now - RESPONSE_WINDOW
    ids = engine.funnel.captured_between(_day(engine, since), _day(engine, until), limit=MONITOR_SAMPLE)
    data = training_rows(engine.leads, kind, entry["features"], now, [UUID(i) for i in ids])
    if len(data.rows) < MONITOR_MIN_LEADS:
        return []
    scored = scorer.score_many(data.rows)
    return list(lab_of(engine).evaluate(np.array(data.outcomes, dtype=int), scored)["calibration"])


def _day(engine: Engine, moment: datetime) -> str:
    """The lender's day of a moment (the views' days)."""
    return moment.astimezone(engine.journeys.default_tz).date().isoformat()


def monitoring_history(engine: Engine) -> list[dict[str, Any]]:
    """Every recorded measurement of every model, oldest first: drift and calibration over time."""
    out = []
    for kind in MODEL_KINDS:
        registry = engine.leads.registry(kind)
        journeys = {v["version"]: v["training"].get("journey") for v in registry.versions}
        for d in registry.drift:
            score = next((p for p in d["psi"] if p["characteristic"] == "score"), None)
            moved = [
                p["characteristic"] for p in d["psi"] if p["verdict"] != "stable" and p["characteristic"] != "score"
            ]
            journey = journeys.get(d["version"])
            off = calibration_warnings(d["calibration"])
            out.append(
                {
                    "kind": kind,
                    "journey": journey,
                    "version": d["version"],
                    "model": f"{kind} v{d['version']}" + (f" ({journey})" if journey else ""),
                    "at": d["at"].isoformat(),
                    "population": d["population"],
                    "leads": d["leads"],
                    "score_psi": None if score is None else score["psi"],
                    "verdict": None if score is None else score["verdict"],
                    "moved": moved,
                    "calibration_off": off,
                    "calibration_measured": bool(d["calibration"]),
                    "calibration": ("; ".join(off) or "ok") if d["calibration"] else _UNMEASURED.get(kind, "—"),
                }
            )
    return sorted(out, key=lambda r: r["at"])


#: What the history says of a measurement without calibration (only propensity is measured on
#: settled outcomes; the others have none to compare with).
_UNMEASURED = {"propensity": "too few settled outcomes"}
