"""The marketer's dashboard, served by ``huoke serve`` at ``/dashboard``.

Signed in with a ``marketer`` or ``admin`` API key: the key is checked once and never kept; the
browser holds a session cookie (HttpOnly, SameSite=Strict) signed with the link key, naming the
key's id and expiring within a day, and every request re-reads the key (a revoked key's session
ends at once). The page is rendered on the server from the same report documents as ``huoke
report … --json`` and the API; charts are drawn by Plotly.js, which huoke serves from the
``plotly`` Python package (no CDN: it works with no internet). Every table downloads as CSV.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from engine.application.access import Access, Caller
from engine.application.analytics import Scope
from engine.application.dashboard_sessions import ROLES, open_session, session_caller
from engine.application.delivery.links import LinkKeys
from engine.application.engine import Engine
from engine.application.report_catalog import FilterError, check_journey, scope_from
from engine.bootstrap.reports import dashboard_data
from engine.domain.shared.values import SourceChannel
from engine.entrypoints.journey_page import add_journey_page
from engine.presentation.dashboard import TABLES, csv_text
from engine.presentation.dashboard_page import page_template, static_files
from engine.settings import Settings

COOKIE = "huoke_session"


# ---- the routes --------------------------------------------------------------------------------


HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # the sign-in form's Origin reaches huoke (no-referrer sends "null")
    "Cache-Control": "no-store",
}


def add_dashboard(app: FastAPI, engine: Engine, access: Access, settings: Settings, keys: LinkKeys) -> None:
    """Serve ``/dashboard`` (sign-in, the page, CSV downloads and the static files)."""
    secure = settings.public_url.startswith("https://")
    lender = engine.deliveries.sender.name if engine.deliveries is not None else "huoke"

    def session(request: Request) -> Caller | None:
        return session_caller(access, keys, request.cookies.get(COOKIE, ""), datetime.now(UTC))

    def page(name: str, status: int = 200, **values: Any) -> HTMLResponse:
        html = page_template(name).render(lender=lender, **values)
        return HTMLResponse(html, status_code=status, headers=HEADERS)

    _sign_in_routes(app, access, keys, page, secure, session, settings.public_url)
    _page_routes(app, engine, settings, session, page)
    add_journey_page(app, engine, settings, session, page)


def _sign_in_routes(
    app: FastAPI,
    access: Access,
    keys: LinkKeys,
    page: Callable[..., HTMLResponse],
    secure: bool,
    session: Callable[[Request], Caller | None],
    public_url: str,
) -> None:
    def same_origin(request: Request) -> bool:
        """A sign-in or sign-out form posted from huoke's own page, never from another site's
        (login CSRF): the browser's Origin (else Referer) must be huoke's own."""
        sent = request.headers.get("origin") or request.headers.get("referer", "")
        if not sent or sent == "null":
            return False
        ours = {f"{request.url.scheme}://{request.headers.get('host', '')}"}
        if public_url:
            ours.add(public_url.rstrip("/"))
        parts = urlsplit(sent)
        return f"{parts.scheme}://{parts.netloc}" in ours

    @app.get("/dashboard/sign-in", include_in_schema=False)
    def sign_in_page() -> HTMLResponse:
        return page("sign_in.html.j2")

    @app.post("/dashboard/sign-in", include_in_schema=False)
    def sign_in(request: Request, key: str = Form("", max_length=200)) -> Response:
        if not same_origin(request):
            return page("sign_in.html.j2", 403, problem="Sign in from huoke's own sign-in page.")
        caller = access.authenticate(key.strip())
        if caller is None:
            return page("sign_in.html.j2", 401, problem="That key is not valid (or was revoked).")
        if caller.role not in ROLES:
            return page(
                "sign_in.html.j2",
                403,
                problem=f"A {caller.role} key cannot open the dashboard: use a marketer or admin key.",
            )
        response = RedirectResponse("/dashboard", status_code=303)
        response.set_cookie(
            COOKIE,
            open_session(keys, caller, datetime.now(UTC)),
            max_age=86_400,
            path="/dashboard",
            httponly=True,
            samesite="strict",
            secure=secure,
        )
        return response

    @app.post("/dashboard/sign-out", include_in_schema=False)
    def sign_out(request: Request) -> Response:
        caller = session(request) if same_origin(request) else None
        if caller is not None:  # the session is over on the server too, not only in this browser
            access.sign_out(caller.key_id, datetime.now(UTC))
        response = RedirectResponse("/dashboard/sign-in", status_code=303)
        response.delete_cookie(COOKIE, path="/dashboard")
        return response


def _page_routes(
    app: FastAPI,
    engine: Engine,
    settings: Settings,
    session: Callable[[Request], Caller | None],
    page: Callable[..., HTMLResponse],
) -> None:
    def data_for(request: Request) -> tuple[dict[str, Any], str]:
        try:
            scope = scope_from(dict(request.query_params))
            check_journey(engine, scope)
        except FilterError as e:
            scope, problem = Scope(), str(e)
        else:
            problem = ""
        return dashboard_data(engine, settings, scope), problem

    @app.get("/dashboard", include_in_schema=False)
    def dashboard(request: Request) -> Response:
        caller = session(request)
        if caller is None:
            return RedirectResponse("/dashboard/sign-in", status_code=303)
        data, problem = data_for(request)
        tables = {name: (title, rows(data), columns) for name, (title, rows, columns) in TABLES.items()}
        engine.journeys.refresh_live()
        payload = json.dumps(data, ensure_ascii=False, default=str).replace("<", "\\u003c")
        return page(
            "dashboard.html.j2",
            data=data,
            payload=payload,
            tables=tables,
            problem=problem,
            caller=caller,
            query=request.url.query,
            channels=[c.value for c in SourceChannel],
            journeys=sorted(engine.journeys.live),
        )

    @app.get("/dashboard/data.json", include_in_schema=False)
    def dashboard_json(request: Request) -> Response:
        if session(request) is None:
            return Response(json.dumps({"title": "sign in first"}), 401, media_type="application/problem+json")
        data, problem = data_for(request)
        if problem:
            return Response(json.dumps({"title": problem}), 400, media_type="application/problem+json")
        return Response(
            json.dumps(data, ensure_ascii=False, default=str),
            media_type="application/json",
            headers={"Cache-Control": "no-store"},
        )

    @app.get("/dashboard/csv/{name}", include_in_schema=False)
    def dashboard_csv(name: str, request: Request) -> Response:
        if session(request) is None:
            return RedirectResponse("/dashboard/sign-in", status_code=303)
        if name not in TABLES:
            return Response(f"no table {name[:40]!r}", 404, media_type="text/plain")
        data, problem = data_for(request)
        if problem:
            return Response(problem, 400, media_type="text/plain")
        _, rows, columns = TABLES[name]
        filename = f"huoke-{name}-{datetime.now(UTC).date().isoformat()}.csv"
        return Response(
            "\ufeff" + csv_text(rows(data), columns),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
        )

    @app.get("/dashboard/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        files = static_files()  # the same list the page's links are versioned from
        if name not in files:
            return Response("not found", 404, media_type="text/plain")
        return FileResponse(files[name][0], headers={"Cache-Control": "public, max-age=86400"})
