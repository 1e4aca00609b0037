"""The dashboard's journey page, ``/dashboard/journeys/{id}``: the live version drawn as a graph
with its counts per step (leads there now, reached, sent, skipped, clicked), every published
version with who published it, when and why, the file in the journeys folder if it differs from
the live version (a draft), and a preview of the live version or the draft for a chosen lead —
the engine's own code on a throwaway store, as ``huoke journeys preview`` runs it. Nothing is
sent. The graph is laid out on the server (``layered``) and drawn by Plotly.js from the package."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from engine.adapters.lead_rows import lead_ref
from engine.application.access import Caller
from engine.application.analytics import Scope, flows_report
from engine.application.engine import Engine
from engine.application.journeys.diagrams import journey_diff, layered
from engine.application.journeys.preview import live_preview
from engine.application.journeys.simulation import lead_as_capture
from engine.bootstrap import folder_journeys, sandbox
from engine.domain.shared.errors import HuokeError
from engine.settings import Settings

PREVIEW_DAYS = 30


def journey_page_data(engine: Engine, settings: Settings, journey_id: str) -> dict[str, Any] | None:
    """What the page shows of a published journey (None if there is no such journey)."""
    engine.journeys.refresh_live()
    live = engine.journeys.live.get(journey_id)
    pub = engine.journeys.publication(journey_id)
    if live is None or pub is None:
        return None
    flows = flows_report(engine, Scope(journey=journey_id))
    [flow] = flows["journeys"]
    counts = {s["step"]: s for s in flow["steps"]}
    graph = layered(live.journey)
    shown = ("active", "reached", "sent", "skipped", "clicked")
    for node in graph["nodes"]:
        node["counts"] = {k: counts.get(node["id"], {}).get(k, 0) for k in shown}
    versions = [
        {"version": n, "current": n == live.version, **{k: str(v) for k, v in pub.published.get(n, {}).items()}}
        for n in sorted(pub.versions, reverse=True)
    ]
    defs, problem = folder_journeys(settings)
    draft = next(((j, raw) for j, raw in defs if j.id == journey_id), None)
    changed = draft is not None and draft[0].content_hash != pub.hashes.get(pub.latest)
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
            "source": draft[0].source if draft else None,
            "changed": changed,
            "diff": journey_diff(draft[0], live.journey, live.version) if draft and changed else None,
            "problem": problem,
        },
    }


def page_preview(
    engine: Engine, settings: Settings, journey_id: str, ref: str, use_draft: bool, at: datetime
) -> dict[str, Any]:
    """A preview of the live version (or the folder's draft) for the lead ``ref``, as the CLI's."""
    lead_id = engine.leads.find_lead(lead_ref(ref, settings.default_phone_region))
    capture = lead_as_capture(engine, engine.leads.get_lead(lead_id))
    defs, problem = folder_journeys(settings)
    if use_draft:
        found = next(((j, raw) for j, raw in defs if j.id == journey_id), None)
        if found is None:
            raise ValueError(problem or f"the journeys folder has no file for {journey_id}")
        journey, raw = found
    else:
        live = engine.journeys.live[journey_id]
        journey = live.journey
        raw = engine.journeys.publication(journey_id).versions[live.version]  # type: ignore[union-attr]
    with sandbox(settings, journey, raw, at, defs, models_from=engine) as (scratch, recorded):
        seen = live_preview(scratch, recorded, journey, capture, PREVIEW_DAYS)
    return {"schema": "huoke.preview/2", "journey_id": journey_id, "version": "draft" if use_draft else "live",
            "at": at.isoformat(), **seen}  # fmt: skip


def add_journey_page(
    app: FastAPI,
    engine: Engine,
    settings: Settings,
    session: Callable[[Request], Caller | None],
    page: Callable[..., HTMLResponse],
) -> None:
    zone = ZoneInfo(settings.timezone)

    @app.get("/dashboard/journeys/{journey_id}", include_in_schema=False)
    def journey_page(journey_id: str, request: Request, lead: str = "", draft: bool = False) -> Response:
        caller = session(request)
        if caller is None:
            return RedirectResponse("/dashboard/sign-in", status_code=303)
        engine.refresh_views()
        data = journey_page_data(engine, settings, journey_id[:100])
        if data is None:
            return page("journey.html.j2", 404, data=None, journey_id=journey_id[:100], caller=caller)
        preview, problem = None, ""
        if lead.strip():
            try:
                preview = page_preview(engine, settings, journey_id, lead.strip()[:200], draft, engine.clock.now())
            except (HuokeError, ValueError) as e:
                problem = str(e)
        payload = json.dumps(data, ensure_ascii=False, default=str).replace("<", "\\u003c")
        return page(
            "journey.html.j2",
            data=data,
            payload=payload,
            caller=caller,
            preview=preview,
            problem=problem,
            lead=lead,
            draft=draft,
            when=lambda iso: f"{datetime.fromisoformat(iso).astimezone(zone):%Y-%m-%d %H:%M}",
            zone=zone.key,
        )
