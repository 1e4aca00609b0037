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
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from engine.application.access import Caller
from engine.application.engine import Engine
from engine.application.journeys import workshop
from engine.bootstrap import FolderWorkshop
from engine.bootstrap.importing import find_lead
from engine.domain.shared.errors import HuokeError
from engine.settings import Settings

PREVIEW_DAYS = 30


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
        folder = FolderWorkshop(settings)
        data = workshop.journey_page(engine, folder, journey_id[:100])
        if data is None:
            return page("journey.html.j2", 404, data=None, journey_id=journey_id[:100], caller=caller)
        preview, problem = None, ""
        if lead.strip():
            try:
                lead_id = find_lead(engine, lead.strip()[:200], settings.default_phone_region)
                now = engine.clock.now()
                preview = workshop.page_preview(engine, folder, journey_id, lead_id, draft, now, PREVIEW_DAYS)
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
