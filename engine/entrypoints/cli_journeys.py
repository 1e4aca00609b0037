"""CLI commands for journeys (validate, list, publish, pause, resume, archive, graph, preview),
backtests (simulate) and agent tasks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.text import Text

from engine.adapters.yaml_files import load_yaml, strip_lines
from engine.application.journeys import workshop
from engine.application.journeys.diagrams import mermaid
from engine.application.journeys.publishing import (
    MigrationPlan,
    change_status,
)
from engine.application.journeys.simulation import (
    Arrival,
    arrivals_from_store,
    hypothetical_lead,
    lead_as_capture,
    with_facts,
)
from engine.application.reports import journeys_overview
from engine.bootstrap import FolderWorkshop
from engine.bootstrap.importing import arrivals_from_files
from engine.domain.journeys.journey import Journey
from engine.domain.shared.errors import HuokeError, JourneyValidationError, MigrationPlanError
from engine.entrypoints.cli_common import (
    JsonOpt,
    app,
    console,
    current_user,
    emit_json,
    engine_for,
    err,
    fail,
    journeys_app,
    opened,
    settings,
    show,
)
from engine.presentation import journeys

Author = Annotated[str, typer.Option(help="who publishes or changes the journey (recorded)")]


@journeys_app.command("validate")
def journeys_validate(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="journey files or folders (default: the journeys folder)")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Validate journeys, the configuration (segments, products, contact policy) and templates;
    list every problem with file and line."""
    s = settings()
    if paths and len(paths) == 1 and paths[0].is_dir():
        s = s.model_copy(update={"journeys_dir": paths[0]})  # a journeys folder, with its own config/
        paths = None
    doc = workshop.validation(FolderWorkshop(s), paths or None)
    if not doc["valid"]:
        if as_json:
            emit_json({"valid": False, "problems": doc["problems"]})
            raise typer.Exit(1)
        fail(f"{len(doc['problems'])} problem(s):\n  " + "\n  ".join(doc["problems"]))
    if as_json:
        emit_json({k: v for k, v in doc.items() if k != "problems"})
        return
    console.print(journeys.valid(doc["journeys"], doc["segment_rules"]))
    for warning in doc["warnings"]:
        err.print(Text.assemble(("warning:", "yellow"), f" {warning}"), highlight=False)


@journeys_app.command("list")
def journeys_list(as_json: JsonOpt = False) -> None:
    """Published journeys: live version, status, entries so far and leads in them now."""
    s = settings()
    engine = engine_for(s)
    rows = journeys_overview(engine, workshop.folder_definitions(FolderWorkshop(s)))
    if as_json:
        emit_json({"schema": "huoke.journeys/1", "journeys": rows})
        return
    console.print(journeys.overview(rows))


@journeys_app.command("publish")
def journeys_publish(
    paths: Annotated[list[Path] | None, typer.Argument(help="journey files (default: every changed journey)")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="show what would change; change nothing")] = False,
    plan: Annotated[Path | None, typer.Option(help="migration plan YAML: {steps: {old: new|exit}, default}")] = None,
    message: Annotated[str, typer.Option("--message", "-m", help="change summary, recorded")] = "",
    author: Author = "",
    as_json: JsonOpt = False,
) -> None:
    """Publish changed journeys as new immutable versions; in-flight leads stay unless a plan moves them."""
    s = settings()
    try:
        migration = MigrationPlan.from_dict(strip_lines(load_yaml(plan))) if plan else None
        engine = engine_for(s)
        reports = workshop.publish_folder(
            engine, FolderWorkshop(s), author or current_user(), message, migration, dry_run, paths or None
        )
    except (JourneyValidationError, MigrationPlanError) as e:
        fail("nothing was published:\n  " + "\n  ".join(getattr(e, "problems", [str(e)])))
    except HuokeError as e:
        fail(str(e))
    doc = {"schema": "huoke.publish/1", "dry_run": dry_run, "journeys": reports}
    show(doc, as_json, journeys.published)


@journeys_app.command("diff")
def journeys_diff(
    path: Annotated[Path, typer.Argument(help="the journey file (a draft of a published journey)")],
    plan: Annotated[Path | None, typer.Option(help="migration plan YAML: {steps: {old: new|exit}, default}")] = None,
    as_json: JsonOpt = False,
) -> None:
    """What a draft changes against the live version: steps added, removed and changed, messages
    whose template changed, and where the leads in the journey now are and would go (the plan
    publishing would apply), with counts. Changes nothing."""
    s = settings()
    draft, raw = load_draft(str(path))
    try:
        migration = MigrationPlan.from_dict(strip_lines(load_yaml(plan))) if plan else None
    except (JourneyValidationError, MigrationPlanError) as e:
        fail("the plan is not valid:\n  " + "\n  ".join(getattr(e, "problems", [str(e)])), 2)
    with opened(s) as engine:
        doc = workshop.draft_diff(engine, FolderWorkshop(s), draft, raw, migration, current_user())
    if as_json:
        emit_json({"schema": "huoke.journey-diff/1", **doc})
        return
    for shown in journeys.diff(doc):
        console.print(shown, highlight=False)


def _status(journey_id: str, action: str, reason: str, author: str) -> None:
    with opened(settings()) as engine:
        status = change_status(engine, journey_id, action, author or current_user(), reason)
    console.print(f"{journey_id} is {status}")


@journeys_app.command("pause")
def journeys_pause(journey_id: str, reason: Annotated[str, typer.Option()] = "", author: Author = "") -> None:
    """Pause: no new entries, no timers fire; resuming applies each send step's stale policy."""
    _status(journey_id, "pause", reason, author)


@journeys_app.command("resume")
def journeys_resume(journey_id: str, author: Author = "") -> None:
    """Resume a paused journey (sends that fell due meanwhile follow their stale policy)."""
    _status(journey_id, "resume", "", author)


@journeys_app.command("archive")
def journeys_archive(journey_id: str, reason: Annotated[str, typer.Option()] = "", author: Author = "") -> None:
    """Archive: no new entries; every lead still in the journey leaves it."""
    _status(journey_id, "archive", reason, author)


def _definition(engine: Any, journey_id: str, version: int | None) -> tuple[Journey, int]:
    try:
        journey, _, number = workshop.published(engine, journey_id, version)
    except HuokeError as e:
        fail(str(e))
    return journey, number


def is_draft(ref: str) -> bool:
    """Whether a journey reference names a file (a draft) rather than a published journey's id."""
    return ref.endswith((".yaml", ".yml")) or Path(ref).is_file()


def load_draft(ref: str) -> tuple[Journey, dict[str, Any]]:
    """A journey file, validated as ``journeys validate`` would (configuration and templates
    included); every problem is printed with its file and line."""
    path = Path(ref)
    if not path.is_file():
        fail(f"{ref}: no such journey file", 2)
    try:
        journey, raw = workshop.draft(FolderWorkshop(settings()), path)
    except JourneyValidationError as e:
        fail(f"{ref} is not valid ({len(e.problems)} problem(s)):\n  " + "\n  ".join(e.problems))
    err.print(Text(f"using the draft {path} (journey {journey.id}, not published)"), highlight=False, soft_wrap=True)
    return journey, raw


@journeys_app.command("graph")
def journeys_graph(
    journey: Annotated[str, typer.Argument(help="a published journey's id, or a journey file (a draft)")],
    version: Annotated[int | None, typer.Option(help="a published version (default: live)")] = None,
    counts: Annotated[bool, typer.Option(help="annotate each step with how many leads are there now")] = True,
) -> None:
    """Print the journey as a Mermaid flowchart: a published version (with how many leads are at
    each step), or a draft file (no store needed)."""
    if is_draft(journey):
        typer.echo(mermaid(load_draft(journey)[0]), nl=False)
        return
    engine = engine_for(settings())
    definition, number = _definition(engine, journey, version)
    engine.refresh_views()
    live = engine.index.step_counts(journey, number) if counts else None
    err.print(Text(f"using journey {journey} v{number}, published"), highlight=False)
    typer.echo(mermaid(definition, live), nl=False)


@journeys_app.command("preview")
def journeys_preview(
    journey_ref: Annotated[str, typer.Argument(help="a published journey's id, or a journey file (a draft)")],
    lead: Annotated[str | None, typer.Option(help="lead id, phone, e-mail or source_channel:external_id")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="a fact for this preview, field=value (repeat); e.g. loan_amount=300000"),
    ] = None,
    version: Annotated[int | None, typer.Option(help="a published version (default: live)")] = None,
    at: Annotated[str | None, typer.Option(help="the moment the lead enters (default: now)")] = None,
    days: Annotated[int, typer.Option(help="how many days to follow it")] = 30,
    as_json: JsonOpt = False,
) -> None:
    """What one lead would go through, as the engine would do it (its own code, on a throwaway
    store and clock): the entry decision and why, screening and the matched product, each step,
    branch and wait, and every message rendered in the lead's language with the time it would
    leave (contact windows, spacing and caps applied) and why it waited. A real lead (--lead),
    or a hypothetical one (no --lead), changed by --set. Nothing is sent."""
    from engine.entrypoints.cli import _resolve_lead
    from engine.entrypoints.cli_reports import parse_moment

    s = settings()
    draft = is_draft(journey_ref)
    engine = engine_for(s) if lead or not draft else None  # a draft with a made-up lead needs no store
    try:
        capture = hypothetical_lead(s.default_locale)
        if engine is not None and lead:
            capture = lead_as_capture(engine, engine.leads.get_lead(_resolve_lead(engine, lead)))
        capture = with_facts(capture, set_ or [])
        now = engine.clock.now() if engine is not None else datetime.now(UTC)
        moment = parse_moment(at, s.timezone, "--at") if at else now
        if draft:
            journey, raw = load_draft(journey_ref)
            label: str | int = "draft"
        else:
            assert engine is not None  # noqa: S101 - opened above for a published journey
            journey, number = _definition(engine, journey_ref, version)
            raw = engine.journeys.publication(journey_ref).versions[number]  # type: ignore[union-attr]
            label = number
            err.print(Text(f"using journey {journey.id} v{number}, published"), highlight=False)
        folder = FolderWorkshop(s)
        if folder.journeys()[1]:
            err.print(Text("note: the journeys folder does not validate; the preview runs the journey alone"))
        seen = workshop.preview(folder, engine, journey, raw, capture, moment, days)
    except ValueError as e:
        fail(str(e), 2)
    finally:
        if engine is not None:
            engine.close()
    doc = {"schema": "huoke.preview/2", "journey_id": journey.id, "version": label, "at": moment.isoformat(), **seen}
    if as_json:
        emit_json(doc)
        return
    for shown in journeys.preview(doc, ZoneInfo(s.timezone)):
        console.print(shown, highlight=False)


@journeys_app.command("test-send")
def journeys_test_send(
    journey_ref: Annotated[str, typer.Argument(help="a published journey's id, or a journey file (a draft)")],
    step: Annotated[str, typer.Option(help="the send step whose message goes out")],
    lead: Annotated[str, typer.Option(help="the lead it is rendered for (id, phone, e-mail or channel:id)")],
    to: Annotated[str, typer.Option(help="an e-mail address or phone on HUOKE_TEST_RECIPIENTS")],
    version: Annotated[int | None, typer.Option(help="a published version (default: live)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Send a step's real message, rendered for a real lead, through the real channel to your own
    inbox or phone (the seed list only), marked [TEST]. Audited; never on the lead's timeline, in
    a report or against a cap."""
    from engine.application.journeys.trial_sends import TrialSendError, as_dict, audit_target, send_trial
    from engine.bootstrap import access_for
    from engine.entrypoints.cli import _resolve_lead

    s = settings()
    engine = engine_for(s)
    try:
        lead_id = _resolve_lead(engine, lead)
        draft = is_draft(journey_ref)
        journey = load_draft(journey_ref)[0] if draft else _definition(engine, journey_ref, version)[0]
        sent = send_trial(engine, journey, step, lead_id, to, s.seed_list, engine.clock.now())
    except TrialSendError as e:
        fail(str(e), 2)
    finally:
        engine.close()
    access = access_for(s)
    try:
        access.record_as(current_user(), "cli", "test_send", audit_target(journey, step, lead_id, to),
                         200 if sent.result.ok else 502, "cli")  # fmt: skip
    finally:
        access.close()
    if as_json:
        emit_json({"schema": "huoke.test-send/1", "journey_id": journey.id, "step": step, **as_dict(sent)})
        return
    if not sent.result.ok:
        fail(f"the {sent.channel} channel refused the test message: {sent.result.reason}")
    console.print(
        f"test {sent.channel} '{sent.template}' sent to {sent.to}" + (f": {sent.subject}" if sent.subject else "")
    )


@app.command("simulate")
def simulate_command(
    journey_id: Annotated[str, typer.Argument(help="a published journey's id, or a journey file (a draft)")],
    version: Annotated[int | None, typer.Option(help="published version (default: live)")] = None,
    leads: Annotated[Path | None, typer.Option(help="CSV/JSONL of leads (the import format)")] = None,
    events: Annotated[Path | None, typer.Option(help="CSV/JSONL of lifecycle events to replay")] = None,
    from_store: Annotated[bool, typer.Option("--from-store", help="replay leads and facts already stored")] = False,
    since_days: Annotated[int | None, typer.Option(help="with --from-store: leads captured in the last N days")] = None,
    days: Annotated[int, typer.Option(help="how many days to simulate")] = 30,
    compare: Annotated[tuple[int, int] | None, typer.Option(help="two versions side by side")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Backtest a journey on a virtual clock: per-step counts, messages that would go out, goals, exits.

    Nothing is sent: channels record instead of sending, in a throwaway store.
    """
    s = settings()
    if from_store == bool(leads):
        fail("give either --leads FILE or --from-store", 2)
    draft = is_draft(journey_id)
    # A draft backtested on files needs no store; published versions and stored leads do.
    engine = engine_for(s) if from_store or not draft else None
    arrivals: list[Arrival]
    if engine is not None and from_store:
        since = engine.clock.now() - timedelta(days=since_days) if since_days else None
        arrivals = arrivals_from_store(engine, since)
    else:
        arrivals = arrivals_from_files(leads, events, s.default_phone_region, ZoneInfo(s.timezone))  # type: ignore[arg-type]
    runs: list[tuple[Journey, dict[str, Any], int]] = []
    if draft:
        journey, raw = load_draft(journey_id)
        runs.append((journey, raw, 0))
    else:
        assert engine is not None  # noqa: S101 - a published journey needs the store, opened above
        for v in list(compare) if compare else [version or 0]:
            journey, number = _definition(engine, journey_id, v or None)
            runs.append((journey, engine.journeys.publication(journey_id).versions[number], number))  # type: ignore[union-attr]
    reports, problem = workshop.backtest(FolderWorkshop(s), engine, runs, arrivals, days)
    if problem:
        err.print(Text("note: the journeys folder does not validate; the backtest runs the journey alone"))
    if as_json:
        emit_json(reports[0] if len(reports) == 1 else {"schema": "huoke.simulation.compare/1", "runs": reports})
        return
    for shown in journeys.simulation(reports):
        console.print(shown)
