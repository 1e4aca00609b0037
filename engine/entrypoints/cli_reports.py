"""``huoke report …`` and ``huoke costs …``: what a marketing team reads, as tables that fit 80
columns (long names wrap, never cut; abbreviations have a legend) or as JSON (``--json``).

Every report reads the views as the last ``run``/worker pass left them; ``--as-of`` rebuilds
them from the event log as it stood at that moment (scratch files; the store is not touched).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer

from engine.application import report_catalog
from engine.application.analytics import ALL_LEADS, Scope
from engine.application.report_catalog import (
    REPORT_VIEWS,
    FilterError,
    ReportName,
    check_journey,
    scope_from,
)
from engine.bootstrap.importing import import_costs
from engine.bootstrap.reports import costs_document, report_document
from engine.domain.marketing.costs import DIMENSIONS
from engine.domain.shared.errors import CostImportError
from engine.entrypoints.cli_common import (
    JsonOpt,
    app,
    clock_for,
    console,
    current_user,
    emit_json,
    err,
    fail,
    log_progress,
    opened,
    report_app,
    settings,
    show,
)
from engine.presentation import reports
from engine.presentation.tables import import_summary

costs_app = typer.Typer(
    help="Marketing costs: what campaigns, partners, channels and events cost.", no_args_is_help=True
)
app.add_typer(costs_app, name="costs")

AsOf = Annotated[
    str | None,
    typer.Option(
        "--as-of",
        help="the report as it stood then, rebuilt from the event log: 2026-03-31 (the end of that day) "
        "or 2026-03-31T18:00 (the lender's time zone unless an offset is given)",
    ),
]
Since = Annotated[str | None, typer.Option("--since", help="leads captured on or after this day (2026-03-01)")]
Until = Annotated[str | None, typer.Option("--until", help="leads captured on or before this day (2026-03-31)")]
Channel = Annotated[
    str | None, typer.Option("--channel", help="only leads attributed to this source channel (by --touch)")
]
JourneyOpt = Annotated[str | None, typer.Option("--journey", help="only this journey")]
Touch = Annotated[str, typer.Option("--touch", help="attribute each lead to its first or its last touch")]


# ---- shared ------------------------------------------------------------------------------------


def parse_moment(text: str, timezone: str, option: str = "--as-of") -> datetime:
    """A day (its end) or a date and time (see ``report_catalog.parse_moment``); refused: exit 2."""
    try:
        return report_catalog.parse_moment(text, timezone, option)
    except FilterError as e:
        fail(str(e), 2)


def scope_of(since: str | None, until: str | None, channel: str | None, journey: str | None, touch: str) -> Scope:
    filters = {"since": since, "until": until, "channel": channel, "journey": journey, "touch": touch}
    try:
        return scope_from(filters, prefix="--")
    except FilterError as e:
        fail(str(e), 2)


def run_report(
    name: ReportName, as_of: str | None, scope: Scope = ALL_LEADS, margin: Decimal | None = None, journeys: bool = True
) -> dict[str, Any]:
    """The ``name`` report document: from the views now, or as it stood at ``as_of``."""
    s = settings()
    moment = parse_moment(as_of, s.timezone) if as_of else None
    # Reports read the published journeys from the store; only the task report needs the
    # configuration files (the desk's service levels), so the others skip reading the folder.
    with opened(s, journeys=journeys and name == "tasks") as engine:
        try:
            check_journey(engine, scope, prefix="--")
        except FilterError as e:
            fail(str(e), 2)
        if moment is None:
            return report_document(name, engine, s, scope, moment, margin)
        views = ", ".join(REPORT_VIEWS[name])
        with log_progress(f"{views} as of {moment:%Y-%m-%d %H:%M}, from the event log") as progress:
            return report_document(name, engine, s, scope, moment, margin, progress)


# ---- the funnel, journeys and referrals -------------------------------------------------------


@report_app.command("funnel")
def report_funnel(as_of: AsOf = None, as_json: JsonOpt = False) -> None:
    """Leads by stage × audience × source channel, and messages sent per journey step."""
    show(run_report("funnel", as_of), as_json, reports.funnel)


@report_app.command("referrals")
def report_referrals(as_of: AsOf = None, as_json: JsonOpt = False) -> None:
    """Referrals by programme and month: made, applied, funded and volume, rewards paid, held,
    capped, clawed back, cost per funded referral."""
    doc = run_report("referrals", as_of, journeys=False)
    show(doc, as_json, reports.referrals)


@report_app.command("journeys")
def report_journeys(as_of: AsOf = None, as_json: JsonOpt = False) -> None:
    """Per journey version: entered, refused, goals within the window, exits, split arms, tasks."""
    doc = run_report("journeys", as_of)
    show(doc, as_json, reports.journeys)


# ---- attribution, costs, experiments, trends ---------------------------------------------------


@report_app.command("attribution")
def report_attribution(
    since: Since = None,
    until: Until = None,
    channel: Channel = None,
    touch: Touch = "first",
    dimension: Annotated[
        list[str] | None, typer.Option("--dimension", help=f"only these: {', '.join(DIMENSIONS)}")
    ] = None,
    as_of: AsOf = None,
    as_json: JsonOpt = False,
) -> None:
    """The funnel (captured → contacted → applied → approved → funded, and volume) by source
    channel, partner, campaign, UTM source/medium/campaign and offline event; first or last touch."""
    scope = scope_of(since, until, channel, None, touch)
    unknown = sorted(set(dimension or []) - set(DIMENSIONS))
    if unknown:
        fail(f"--dimension: {', '.join(unknown)} unknown; use {', '.join(DIMENSIONS)}")
    doc = run_report("attribution", as_of, scope)
    show(doc, as_json, partial(reports.attribution, touch=touch, dimensions=dimension or DIMENSIONS))


@report_app.command("costs")
def report_costs(
    since: Since = None,
    until: Until = None,
    channel: Channel = None,
    touch: Touch = "first",
    margin: Annotated[
        float | None, typer.Option("--margin", help="share of funded volume counted as return (HUOKE_FUNDED_MARGIN)")
    ] = None,
    as_of: AsOf = None,
    as_json: JsonOpt = False,
) -> None:
    """Spend against results: cost per lead, per application and per funded loan, and return on
    spend (funded volume × margin − spend, over spend), per cost and per channel."""
    scope = scope_of(since, until, channel, None, touch)
    if margin is not None and not 0 <= margin <= 1:
        fail(f"--margin: expected a share between 0 and 1 (0.03 = 3%), got {margin}")
    doc = run_report("costs", as_of, scope, Decimal(str(margin)) if margin is not None else None)
    show(doc, as_json, reports.costs)


@report_app.command("experiments")
def report_experiments(
    journey: JourneyOpt = None, since: Since = None, until: Until = None, as_of: AsOf = None, as_json: JsonOpt = False
) -> None:
    """Every split and holdout: conversion per arm to each goal and click-through (goal
    'clicked'), lift over the control with 95% confidence intervals, and a verdict in plain words."""
    scope = scope_of(since, until, None, journey, "first")
    doc = run_report("experiments", as_of, scope)
    show(doc, as_json, reports.experiments)


@report_app.command("engagement")
def report_engagement(journey: JourneyOpt = None, as_of: AsOf = None, as_json: JsonOpt = False) -> None:
    """Per journey step: messages sent, unique clicks by people and click-through rate, scanner
    clicks (never engagement), opens (unreliable) and clickers who applied after."""
    doc = run_report("engagement", as_of, scope_of(None, None, None, journey, "first"))
    show(doc, as_json, reports.engagement)


@report_app.command("daily")
def report_daily(
    since: Since = None,
    until: Until = None,
    channel: Channel = None,
    journey: JourneyOpt = None,
    as_of: AsOf = None,
    as_json: JsonOpt = False,
) -> None:
    """Each day: leads captured, contacted, applied, approved, funded and volume, messages sent
    (days are the lender's; --since/--until pick days of activity)."""
    scope = scope_of(since, until, channel, journey, "first")
    doc = run_report("daily", as_of, scope)
    show(doc, as_json, reports.daily)


@report_app.command("tasks")
def report_tasks(since: Since = None, until: Until = None, as_of: AsOf = None, as_json: JsonOpt = False) -> None:
    """Loan officers' tasks per queue: created, open, overdue (past the service level), done and
    outcomes, escalated, hours to first contact (median, 90th percentile)."""
    scope = scope_of(since, until, None, None, "first")
    doc = run_report("tasks", as_of, scope)
    show(doc, as_json, reports.tasks)


@report_app.command("scores")
def report_scores(
    since: Since = None, until: Until = None, channel: Channel = None, as_of: AsOf = None, as_json: JsonOpt = False
) -> None:
    """Leads per score band (each lead's latest score of each kind), and how many applied and were funded."""
    scope = scope_of(since, until, channel, None, "first")
    doc = run_report("scores", as_of, scope)
    show(doc, as_json, reports.scores)


@report_app.command("flows")
def report_flows(journey: JourneyOpt = None, as_of: AsOf = None, as_json: JsonOpt = False) -> None:
    """Each journey's steps in order: leads that reached each, leads there now, messages sent."""
    scope = scope_of(None, None, None, journey, "first")
    doc = run_report("flows", as_of, scope)
    show(doc, as_json, reports.flows)


# ---- costs ------------------------------------------------------------------------------------


@costs_app.command("import")
def costs_import(file: Path, as_json: JsonOpt = False) -> None:
    """Record a CSV (or JSONL) of costs: kind (channel, partner, campaign, utm_source, utm_medium,
    utm_campaign or event), name, period (2026-03, 2026-03-05 or 2026-03-01..2026-03-31), amount,
    currency, note. Valid rows are kept; importing again changes nothing; a new amount revises."""
    s = settings()
    if not file.exists():
        fail(f"{file}: no such file")
    try:
        report = import_costs(s, file, current_user(), clock_for(s))
    except CostImportError as problem:
        fail(str(problem))
    if as_json:
        emit_json(report.as_dict())
    else:
        refused = len({p.line for p in report.errors})
        console.print(
            import_summary(file, report.rows, report.created, f"{report.revised} revised", report.unchanged, refused)
        )
        for p in report.errors:
            err.print(f"{file}:{p.line}: {p.field}: {p.problem}", soft_wrap=True, highlight=False)
    if report.errors:
        raise typer.Exit(1)


@costs_app.command("list")
def costs_list(as_json: JsonOpt = False) -> None:
    """Every cost recorded (as last revised) and the referral rewards paid (from the ledger)."""
    s = settings()
    with opened(s, journeys=False) as engine:
        doc = costs_document(s, engine)
    show(doc, as_json, reports.costs_list)
