"""CLI commands for screening: ``huoke model`` (train, evaluate, list, score, drift) and
``huoke segments list``."""

from __future__ import annotations

import getpass
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer

from engine.adapters.model_data import OutputFileError, check_output, read_csv, write_rows
from engine.application.screening import models
from engine.application.screening.datasets import Dataset
from engine.domain.shared.errors import HuokeError
from engine.entrypoints.cli_common import (
    JsonOpt,
    app,
    fail,
    opened,
    settings,
    show,
    with_progress,
)
from engine.presentation import model_tables as models_shown

model_app = typer.Typer(
    help="Train, evaluate and apply the propensity and credit pre-screen models.", no_args_is_help=True
)
segments_app = typer.Typer(help="Segments and their sizes.", no_args_is_help=True)
app.add_typer(model_app, name="model")
app.add_typer(segments_app, name="segments")

Kind = Annotated[str, typer.Argument(help="propensity, credit or uplift")]
CsvOpt = Annotated[Path | None, typer.Option("--csv", help="a CSV file with one row per lead or loan")]
TargetOpt = Annotated[str | None, typer.Option(help="the CSV's outcome column (1/0, yes/no or bad/good)")]
TimeOpt = Annotated[
    str | None, typer.Option("--time-column", help="the CSV's date column; the later window is held out")
]
IdOpt = Annotated[list[str] | None, typer.Option("--id-column", help="an id column: kept, never a feature")]
ExcludeOpt = Annotated[list[str] | None, typer.Option("--exclude", help="a column to leave out")]
VersionOpt = Annotated[int | None, typer.Option(help="model version (default: the one in use)")]
JourneyOpt = Annotated[
    str | None, typer.Option("--journey", help="uplift: the journey whose random holdout it learns from and serves")
]
TreatmentOpt = Annotated[
    str | None, typer.Option("--treatment", help="uplift from a CSV: the column saying 1 messaged, 0 held out")
]


def _csv_data(
    csv: Path,
    target: str | None,
    time_column: str | None,
    ids: list[str] | None,
    exclude: list[str] | None,
    treatment: str | None = None,
) -> Dataset:
    if target is None:
        fail("--csv needs --target COLUMN (the outcome to learn)")
    return read_csv(csv, target, time_column, ids, exclude, treatment)


@model_app.command("train")
def model_train(
    kind: Kind,
    from_store: Annotated[bool, typer.Option("--from-store", help="learn from the lead history in the store")] = False,
    csv: CsvOpt = None,
    target: TargetOpt = None,
    time_column: TimeOpt = None,
    id_column: IdOpt = None,
    exclude: ExcludeOpt = None,
    journey: JourneyOpt = None,
    treatment: TreatmentOpt = None,
    rescore: Annotated[bool, typer.Option(help="score every lead with the new version")] = True,
    window: Annotated[
        str | None,
        typer.Option(help="train on the last DAYS only, e.g. 180d (rolling; older versions stay)"),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Train a model, evaluate it on a later time window, register it, and score the leads with it.
    An uplift model learns from one journey's random holdout (--journey) who is persuadable."""
    if from_store == (csv is not None):
        fail("give exactly one of --from-store or --csv FILE --target COLUMN")
    if (kind == "uplift") != (journey is not None):
        fail("an uplift model needs --journey ID (and only an uplift model takes one)", 2)
    days = _window_days(window)
    with opened(settings(), journeys=False) as engine:
        data = (
            models.dataset_from_store(engine, kind, journey)
            if csv is None
            else _csv_data(csv, target, time_column, id_column, exclude, treatment)
        )
        if days is not None:
            data = data.latest(timedelta(days=days))
        user = getpass.getuser()
        if as_json or not rescore:
            doc = models.train(engine, kind, data, user, rescore, journey=journey)
        else:
            doc = with_progress(
                len(engine.leads.lead_ids()),
                "scoring leads",
                lambda advance: models.train(engine, kind, data, user, rescore, advance, journey=journey),
            )
    show({"schema": "huoke.model.trained/1", **doc}, as_json, partial(models_shown.train, kind=kind))


def _window_days(text: str | None) -> int | None:
    """``180d`` (or ``180``) as a number of days; None without a window."""
    if text is None:
        return None
    digits = text.strip().lower().removesuffix("d")
    if not digits.isdigit() or int(digits) < 1:
        fail(f"--window {text!r} is not a number of days like 180d", 2)
    return int(digits)


@model_app.command("list")
def model_list(as_json: JsonOpt = False) -> None:
    """Every registered model version, with its held-out metrics."""
    with opened(settings(), journeys=False) as engine:
        rows = models.model_list(engine)
    show({"schema": "huoke.models/1", "models": rows}, as_json, models_shown.model_list)


@model_app.command("rollback")
def model_rollback(
    kind: Kind,
    to: Annotated[int, typer.Option("--to", help="the earlier version to use again")],
    as_json: JsonOpt = False,
) -> None:
    """Use an earlier version again (registered anew as the newest, so the history says who went
    back when) and rescore every lead with it."""
    with opened(settings(), journeys=False) as engine:
        try:
            doc = models.roll_back(engine, kind, to, getpass.getuser())
        except HuokeError as e:
            fail(str(e))
    show({"schema": "huoke.model.rollback/1", **doc}, as_json, partial(models_shown.rollback, kind=kind))


@model_app.command("evaluate")
def model_evaluate(
    kind: Kind,
    version: VersionOpt = None,
    csv: CsvOpt = None,
    target: TargetOpt = None,
    time_column: TimeOpt = None,
    id_column: IdOpt = None,
    exclude: ExcludeOpt = None,
    treatment: TreatmentOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Measure a registered model on outcomes it has not seen: the store's after its training
    window (default), or a CSV's."""
    with opened(settings(), journeys=False) as engine:
        data = _csv_data(csv, target, time_column, id_column, exclude, treatment) if csv else None
        doc = models.evaluate_version(engine, kind, version, data)
    show({"schema": "huoke.model.evaluation/1", **doc}, as_json, partial(models_shown.evaluate, kind=kind))


@model_app.command("score")
def model_score(
    kind: Kind,
    csv: Annotated[Path, typer.Option("--csv", help="the prospect list (not imported)")],
    out: Annotated[Path, typer.Option("--out", help="where to write the scored rows")],
    id_column: IdOpt = None,
    version: VersionOpt = None,
    force: Annotated[bool, typer.Option("--force", help="replace --out if it exists")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Score a prospect list (e.g. a partner's) without importing it: ids, probability, score, band, reasons."""
    try:
        check_output(out, force)
    except OutputFileError as e:  # before an hour of scoring, not after it
        fail(str(e), 2)
    with opened(settings(), journeys=False) as engine:
        data = read_csv(csv, None, None, id_column, [])
        doc, header, rows = models.score_dataset(engine, kind, data, version)
        try:
            write_rows(out, header, rows, force=force)
        except OutputFileError as e:
            fail(str(e), 2)
        doc["out"] = str(out)
    show({"schema": "huoke.model.scored/1", **doc}, as_json, partial(models_shown.score, kind=kind))


@model_app.command("drift")
def model_drift(
    kind: Kind,
    version: VersionOpt = None,
    csv: CsvOpt = None,
    id_column: IdOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """PSI of the score and of each characteristic, now against the training sample
    (< 0.10 stable, 0.10–0.25 investigate, > 0.25 shifted)."""
    with opened(settings(), journeys=False) as engine:
        data = read_csv(csv, None, None, id_column, []) if csv else None
        doc = models.drift(engine, kind, version, data)
    show({"schema": "huoke.model.drift/1", **doc}, as_json, partial(models_shown.drift, kind=kind))


@model_app.command("monitor")
def model_monitor(as_json: JsonOpt = False) -> None:
    """Measure every model in use now, as the worker does weekly (drift of the last 30 days' leads
    against the training sample; calibration on the outcomes settled since), record it, and show
    every measurement so far: drift and calibration over time."""
    with opened(settings(), journeys=False) as engine:
        measured = models.monitor(engine, force=True)
        history = models.monitoring_history(engine)
    show(
        {"schema": "huoke.model.monitoring/1", "measured": measured, "history": history}, as_json, models_shown.monitor
    )


@segments_app.command("list")
def segments_list(as_json: JsonOpt = False) -> None:
    """Every segment in segments.yaml with how many leads are in it now."""
    with opened(settings(), journeys=True) as engine:
        sizes = engine.screening.segment_sizes()
        rules = engine.leads.rules
        rows: list[dict[str, Any]] = [
            {"segment": r.id, "leads": sizes.get(r.id, 0), "description": r.description} for r in rules.segments
        ]
        bands = engine.screening.bands()
    doc = {"schema": "huoke.segments/1", "rules_version": rules.version, "segments": rows, "bands": bands}
    show(doc, as_json, models_shown.segments)
