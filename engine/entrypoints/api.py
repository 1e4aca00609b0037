"""The HTTP API under ``/api/v1``: what a lender's web forms, partner portals, loan origination
system, CRM and warehouse call. Every route needs an API key (``Authorization: Bearer hk_…``)
whose role may use it; every state-changing call is an audit entry; errors are RFC 9457
``application/problem+json`` documents, never a stack trace.

Routes and roles (admin may call every route):

- integrator: ``POST /leads``, ``POST /events``, ``POST /leads/{ref}/consent``
- agent: ``GET /leads/{ref}``, ``GET /tasks``, ``POST /tasks/{id}/claim|complete|reassign``,
  ``POST /leads/{ref}/consent``
- marketer: ``GET /leads``, ``GET /leads/{ref}``, ``/journeys…``, ``/reports/…``
- admin: ``GET /audit``
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine.adapters.request_logging import redact_path
from engine.application.access import Access, Caller
from engine.application.engine import Engine
from engine.domain.shared.errors import (
    AccessError,
    HuokeError,
    LeadNotFoundError,
    TaskNotYoursError,
    UnknownJourneyError,
)
from engine.entrypoints.api_routes import (
    _journey_routes,
    _lead_routes,
    _report_routes,
    _task_routes,
)
from engine.entrypoints.api_wire import (
    BATCH_ROUTES,
    CHANGES,
    PREFIX,
    PROBLEMS,
    ApiProblem,
    no_nul_strings,
    problem,
)
from engine.settings import Settings


async def refuse_nul(request: Request) -> None:
    """No NUL character anywhere in a call: no store keeps one in text, and a view that met one
    in an event could never apply it."""
    route = request.scope.get("route")
    body = b"" if getattr(route, "name", "") in BATCH_ROUTES else await request.body()  # batches: per item
    if "\x00" in request.url.path or "%00" in request.url.query or b"\\u0000" in body or b"\x00" in body:
        raise ApiProblem(400, "the request holds a NUL character (\\u0000), which no field may contain")
    names = [name for name, _ in request.query_params.multi_items()]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:  # no parameter of the API takes several values: one would silently win
        raise ApiProblem(400, f"query parameter {', '.join(repeated)} given more than once; give it once")
    if isinstance(route, APIRoute):  # a misspelt filter must not be ignored silently
        known = _query_names(route.dependant)
        unknown = sorted(set(names) - known)
        if unknown:
            allowed = ", ".join(sorted(known)) or "none"
            raise ApiProblem(
                400, f"unknown query parameter {', '.join(map(repr, unknown))} (this call takes: {allowed})"
            )


def _query_names(dependant: Any) -> set[str]:
    """The query parameters a route (with its dependencies) declares."""
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


# ---- the app -------------------------------------------------------------------------------


def add_api(app: FastAPI, engine: Engine, access: Access, settings: Settings) -> None:
    """Mount ``/api/v1`` on ``app``: routes, key checks, the audit trail, problem documents."""
    router = APIRouter(prefix=PREFIX, dependencies=[Depends(refuse_nul)], responses=PROBLEMS)
    app.state.access = access
    _lead_routes(router, engine, settings)
    _task_routes(router, engine)
    _journey_routes(router, engine, settings)
    _report_routes(router, engine, access, settings)
    app.include_router(router)
    _add_audit(app, settings)
    _add_problems(app)
    document = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            no_nul_strings(document())
        return app.openapi_schema or document()

    app.openapi = openapi  # type: ignore[method-assign]


def _add_audit(app: FastAPI, settings: Settings) -> None:
    access: Access = app.state.access
    key = settings.suppression_pepper.get_secret_value().encode()

    @app.middleware("http")
    async def audit(request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        if request.method in CHANGES and request.url.path.startswith(PREFIX):
            caller: Caller | None = getattr(request.state, "caller", None)
            route = request.scope.get("route")
            action = getattr(route, "name", "") or "unknown route"
            client = request.client.host if request.client else ""
            target = redact_path(request.url.path, key)  # a lead by id or keyed hash, never its phone
            await run_in_threadpool(access.record, caller, action, target, response.status_code, client)
        return response


def _add_problems(app: FastAPI) -> None:
    """Every error under /api/v1 as a problem document; nothing a caller sends yields a 500."""

    @app.exception_handler(ApiProblem)
    async def api_problem(request: Request, exc: ApiProblem) -> JSONResponse:
        return problem(exc.status, exc.detail, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "field": ".".join(str(p) for p in e.get("loc", ()) if p != "body" and "[" not in str(p)) or "body",
                "problem": e.get("msg", ""),
            }
            for e in exc.errors()
        ]
        return problem(422, "the request is not valid", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Any:
        if not request.url.path.startswith(PREFIX):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
        return problem(exc.status_code, str(exc.detail))

    @app.exception_handler(LeadNotFoundError)
    async def no_lead(request: Request, exc: LeadNotFoundError) -> JSONResponse:
        return problem(404, str(exc))

    @app.exception_handler(UnknownJourneyError)
    async def no_journey(request: Request, exc: UnknownJourneyError) -> JSONResponse:
        return problem(404, str(exc))

    @app.exception_handler(TaskNotYoursError)
    async def not_yours(request: Request, exc: TaskNotYoursError) -> JSONResponse:
        return problem(403, str(exc))

    @app.exception_handler(HuokeError)
    async def refused(request: Request, exc: HuokeError) -> JSONResponse:
        status = 404 if str(exc).startswith("no ") else 409 if isinstance(exc, AccessError) else 422
        return problem(status, str(exc))
