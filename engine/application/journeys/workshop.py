"""The marketer's workshop: the journeys folder as the team edits it, validated, published, and
tried before launch — a preview of one lead's path, a backtest over many, the journey page's
figures and draft. The CLI, the API and the dashboard call these; the folder and the throwaway
engines a trial runs on come through the ``JourneyFolder`` port (bootstrap builds it)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from engine.application.analytics import Scope, flows_report
from engine.application.engine import Engine
from engine.application.journeys.diagrams import journey_diff, layered
from engine.application.journeys.preview import live_preview
from engine.application.journeys.publishing import MigrationPlan, publish_journey
from engine.application.journeys.simulation import Arrival, first_moment, lead_as_capture, replay
from engine.application.leads.commands import CaptureLead
from engine.application.ports import JourneyFolder
from engine.domain.journeys.journey import Journey
from engine.domain.shared.errors import HuokeError, JourneyValidationError

Draft = tuple[Journey, dict[str, Any]]


def validation(folder: JourneyFolder, only: list[Path] | None = None) -> dict[str, Any]:
    """The folder's journeys (or ``only`` these files), its configuration and templates checked:
    ``valid`` and each journey, or every problem with its file and line."""
    try:
        defs = folder.load(only)
    except JourneyValidationError as e:
        return {"valid": False, "problems": e.problems, "warnings": []}
    journeys = [
        {"id": j.id, "name": j.name, "file": j.source, "steps": len(j.steps), "sends": len(j.sends()),
         "locales": list(j.locales)}
        for j, _ in defs.journeys
    ]  # fmt: skip
    return {
        "valid": True,
        "problems": [],
        "journeys": journeys,
        "segment_rules": defs.rules.version,
        "warnings": list(defs.warnings),
    }


def folder_definitions(folder: JourneyFolder) -> list[Draft]:
    """The folder's journeys, or none when it does not validate (the published versions run)."""
    try:
        return list(folder.load().journeys)
    except JourneyValidationError:
        return []


def publish_folder(
    engine: Engine,
    folder: JourneyFolder,
    author: str,
    message: str,
    plan: MigrationPlan | None,
    dry_run: bool,
    only: list[Path] | None = None,
) -> list[dict[str, Any]]:
    """Publish every changed journey of the folder (or ``only`` these files) as a new version;
    with ``dry_run`` nothing changes and the plan's moves are shown. Raises
    ``JourneyValidationError`` before anything is published, and ``HuokeError`` naming the journey
    whose plan does not fit."""
    defs = folder.load(only)
    reports = []
    for journey, raw in defs.journeys:
        try:
            report = publish_journey(engine, journey, raw, author, message, plan, dry_run, folder.fingerprint())
        except HuokeError as e:
            raise type(e)(f"{journey.id}: {e}") from e
        reports.append(report.as_dict())
    return reports


def draft(folder: JourneyFolder, path: Path) -> Draft:
    """A journey file, validated as the folder would be (configuration and templates included)."""
    [(journey, raw)] = folder.load([path]).journeys
    return journey, raw


def published(engine: Engine, journey_id: str, version: int | None = None) -> tuple[Journey, dict[str, Any], int]:
    """A published version (the live one by default), its definition and raw document."""
    live = engine.journeys.live.get(journey_id)
    number = version or (live.version if live else 0)
    journey = engine.journeys.definition(journey_id, number)
    raw = engine.journeys.publication(journey_id).versions[number]  # type: ignore[union-attr]
    return journey, raw, number


def preview(
    folder: JourneyFolder,
    engine: Engine | None,
    journey: Journey,
    raw: dict[str, Any],
    capture: CaptureLead,
    at: datetime,
    days: int,
) -> dict[str, Any]:
    """What one lead would go through, run by the engine's own code on a throwaway store beside
    the folder's other journeys (``engine``, when given, lends its models)."""
    beside, _ = folder.journeys()
    with folder.sandbox(journey, raw, at, beside, engine) as (scratch, recorded):
        return live_preview(scratch, recorded, journey, capture, days)


def backtest(
    folder: JourneyFolder,
    engine: Engine | None,
    runs: list[tuple[Journey, dict[str, Any], int]],
    arrivals: list[Arrival],
    days: int,
) -> tuple[list[dict[str, Any]], str]:
    """Each run (a draft or a published version) replayed over ``arrivals`` for ``days`` on a
    virtual clock, beside the folder's other journeys; and why the folder could not be used ('')."""
    beside, problem = folder.journeys()
    reports = []
    for journey, raw, number in runs:
        with folder.sandbox(journey, raw, first_moment(arrivals), beside, engine) as (scratch, recorded):
            reports.append(replay(scratch, journey, number, arrivals, days, recorded))
    return reports, problem


def journey_page(engine: Engine, folder: JourneyFolder, journey_id: str) -> dict[str, Any] | None:
    """What the journey page shows of a published journey: its graph with each step's counts,
    its versions, and the folder's draft against it (None if there is no such journey)."""
    engine.journeys.refresh_live()
    live = engine.journeys.live.get(journey_id)
    pub = engine.journeys.publication(journey_id)
    if live is None or pub is None:
        return None
    [flow] = flows_report(engine, Scope(journey=journey_id))["journeys"]
    counts = {s["step"]: s for s in flow["steps"]}
    graph = layered(live.journey)
    shown = ("active", "reached", "sent", "skipped", "clicked")
    for node in graph["nodes"]:
        node["counts"] = {k: counts.get(node["id"], {}).get(k, 0) for k in shown}
    versions = [
        {"version": n, "current": n == live.version, **{k: str(v) for k, v in pub.published.get(n, {}).items()}}
        for n in sorted(pub.versions, reverse=True)
    ]
    defs, problem = folder.journeys()
    found = next(((j, raw) for j, raw in defs if j.id == journey_id), None)
    changed = found is not None and found[0].content_hash != pub.hashes.get(pub.latest)
    return {
        "journey_id": journey_id,
        "name": live.journey.name,
        "version": live.version,
        "status": str(live.status),
        "entered": flow["entered"],
        "graph": graph,
        "steps": flow["steps"],
        "versions": versions,
        "draft": {
            "source": found[0].source if found else None,
            "changed": changed,
            "diff": journey_diff(found[0], live.journey, live.version) if found and changed else None,
            "problem": problem,
        },
    }


def page_preview(
    engine: Engine, folder: JourneyFolder, journey_id: str, lead_id: UUID, use_draft: bool, at: datetime, days: int
) -> dict[str, Any]:
    """A preview of the live version (or the folder's draft) for a stored lead, as the CLI's."""
    capture = lead_as_capture(engine, engine.leads.get_lead(lead_id))
    if use_draft:
        defs, problem = folder.journeys()
        found = next(((j, raw) for j, raw in defs if j.id == journey_id), None)
        if found is None:
            raise ValueError(problem or f"the journeys folder has no file for {journey_id}")
        journey, raw = found
    else:
        journey, raw, _ = published(engine, journey_id)
    seen = preview(folder, engine, journey, raw, capture, at, days)
    return {"schema": "huoke.preview/2", "journey_id": journey_id, "version": "draft" if use_draft else "live",
            "at": at.isoformat(), **seen}  # fmt: skip


def draft_diff(
    engine: Engine, folder: JourneyFolder, draft: Journey, raw: dict[str, Any], plan: MigrationPlan | None, by: str
) -> dict[str, Any]:
    """What a draft changes against the live version (steps, templates), where the leads in the
    journey are now, and where the plan publishing would apply moves them. Changes nothing."""
    engine.journeys.refresh_live()
    live = engine.journeys.live.get(draft.id)
    engine.refresh_views()
    doc = journey_diff(draft, live.journey if live else None, live.version if live else None)
    doc["leads_now"] = engine.index.step_counts(draft.id, live.version) if live else {}
    report = publish_journey(engine, draft, raw, by, "", plan, True, folder.fingerprint()).as_dict()
    doc["moves"] = report["moves"]
    doc["would_receive_again"] = report.get("would_receive_again", 0)
    return doc
