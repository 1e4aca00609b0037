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

from collections.abc import Callable, Iterable
from datetime import datetime
from enum import Enum
from typing import Annotated, Any, Literal
from uuid import UUID
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Body, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine.adapters.lead_rows import lead_ref
from engine.application.access import Access, Caller
from engine.application.engine import Engine
from engine.application.journeys import workshop
from engine.application.journeys.publishing import MigrationPlan, change_status
from engine.application.journeys.tasks import claim_task, complete_task, reassign_task, task_documents
from engine.application.journeys.trial_sends import TrialSendError, send_trial
from engine.application.journeys.trial_sends import as_dict as trial_dict
from engine.application.leads.listing import list_leads_page
from engine.application.leads.timeline import lead_timeline
from engine.application.reports import journeys_overview
from engine.bootstrap import FolderWorkshop
from engine.domain.access.api_key import Role
from engine.domain.journeys.agent_task import OUTCOMES
from engine.domain.shared.errors import (
    AccessError,
    HuokeError,
    JourneyValidationError,
    LeadNotFoundError,
    MigrationPlanError,
    TaskNotYoursError,
    UnknownJourneyError,
)
from engine.domain.shared.values import Audience, SourceChannel, Stage
from engine.entrypoints.http_edge import PROBLEM, problem_document
from engine.entrypoints.http_logging import redact_path
from engine.entrypoints.importing import ImportReport, import_leads, import_lifecycle
from engine.entrypoints.report_docs import (
    FilterError,
    ReportName,
    check_day,
    check_journey,
    report_document,
    scope_from,
)
from engine.settings import Settings

PREFIX = "/api/v1"
#: Most items one batch call may carry.
MAX_BATCH = 1000
#: Methods that change state: each call is an audit entry, whatever its outcome.
CHANGES = frozenset({"POST", "PUT", "PATCH", "DELETE"})

bearer = HTTPBearer(auto_error=False, description="an API key: huoke api-keys create --role ROLE --name NAME")


class ApiProblem(HuokeError):
    """An error the API answers with a problem document."""

    def __init__(self, status: int, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.detail, self.extra = status, detail, extra


def problem(status: int, detail: str, **extra: Any) -> JSONResponse:
    body = problem_document(status, detail, **extra)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


# ---- wire models ---------------------------------------------------------------------------


class ItemProblem(BaseModel):
    field: str
    problem: str


class Problem(BaseModel):
    """An error (RFC 9457 problem details); a refused request body lists each field's problem."""

    model_config = ConfigDict(extra="allow")
    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[ItemProblem] | None = None


def _problem_response(what: str) -> dict[str, Any]:
    return {"description": what, "content": {PROBLEM: {"schema": Problem.model_json_schema()}}}


#: Every answer of the API that is not a success, as documented for every route.
PROBLEMS: dict[int | str, dict[str, Any]] = {
    400: _problem_response("the request cannot be read (a NUL byte, a malformed value)"),
    401: _problem_response("no API key, or not a valid one (WWW-Authenticate: Bearer)"),
    403: _problem_response("the key's role may not do this"),
    404: _problem_response("no such lead, task, journey or report"),
    405: _problem_response("the method is not allowed here (Allow names those that are)"),
    409: _problem_response("refused in the current state (a task another agent holds, a key in use)"),
    413: _problem_response("the request body is over the limit"),
    422: _problem_response("the request is not valid: each field's problem"),
    503: _problem_response("the store does not answer; try again after Retry-After seconds"),
}


class ItemResult(BaseModel):
    """What became of one item of a batch (``index`` counts from 1, as lines do in a file)."""

    index: int
    status: Literal["created", "updated", "unchanged", "refused"]
    lead_id: str | None = None
    errors: list[ItemProblem] = []


class BatchResult(BaseModel):
    schema_: str = Field("huoke.batch/1", alias="schema")
    received: int
    created: int
    updated: int
    unchanged: int
    refused: int
    items: list[ItemResult]
    flagged: list[dict[str, Any]] = []
    conflicts: list[dict[str, Any]] = []

    model_config = ConfigDict(populate_by_name=True)


#: A day the reports take (1970-01-02 to 2199-12-31), or none: what the schema promises.
DAY = (
    r"^$|^(?!1970-01-01)(19[7-9][0-9]|2[01][0-9]{2})-((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])"
    r"|(0[469]|11)-(0[1-9]|[12][0-9]|30)|02-(0[1-9]|1[0-9]|2[0-8]))$"
)
#: A moment in that range (ISO 8601; the rest of it as date-time says).
MOMENT = r"^(?!1970-01-01)(19[7-9][0-9]|2[01][0-9]{2})-"
#: Text that is not only spaces (fields are stripped: the schema says what is kept), no NUL.
NOT_BLANK = r"^[^\x00]*[^\s\x00][^\x00]*$"
#: What no text of the API may hold (no store keeps it): said of every string in the document.
NO_NUL = "^[^\\u0000]*$"
#: A lead id (lower-case UUID) or nothing.
LEAD_ID_OR_NONE = r"^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})?$"
#: Routes taking a batch of items: a NUL refuses its item, not the call.
BATCH_ROUTES = frozenset({"create_leads", "record_events"})


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_nul(v) for v in value)
    return False


def _bad_item(row: Any) -> str:
    if not isinstance(row, dict):
        return "each item must be a JSON object"
    return "the item holds a NUL character (\\u0000), which no field may contain"


def no_nul_strings(node: Any) -> None:
    """Say in the OpenAPI document that no string holds NUL (every free string schema gets the
    pattern; those with their own pattern, format or choices already say more)."""
    if isinstance(node, dict):
        if node.get("type") == "string" and not {"pattern", "format", "enum", "const"} & node.keys():
            node["pattern"] = NO_NUL
        if node.get("type") == "object" and "additionalProperties" in node:
            node.setdefault("propertyNames", {"pattern": NO_NUL})
        for value in node.values():
            no_nul_strings(value)
    elif isinstance(node, list):
        for value in node:
            no_nul_strings(value)


class ConsentIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, str_max_length=1000)

    channel: Literal["email", "sms", "phone", "all"]
    action: Literal["grant", "withdraw"]
    purpose: Literal["marketing", "tracking"] = Field(
        "marketing", description="marketing messages, or click tracking of the channel's messages"
    )
    evidence: str = Field(min_length=1, pattern=NOT_BLANK, description="what the lead signed or said, and where")
    source: str = Field("", description="the system or person that took it (default: the API key's name)")


class TestSendIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, str_max_length=200)

    step: str = Field(min_length=1, pattern=NOT_BLANK, description="the send step whose message goes out")
    lead: str = Field(
        min_length=1, pattern=NOT_BLANK, description="the lead it is rendered for: id, phone, e-mail or channel:id"
    )
    to: str = Field(
        min_length=3,
        pattern=r"^[^\x00]*[^\s\x00][^\x00]+[^\s\x00][^\x00]*$",
        description="an e-mail address or phone on HUOKE_TEST_RECIPIENTS",
    )


class CompleteIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, str_max_length=1000)

    outcome: Literal[OUTCOMES]  # type: ignore[valid-type]
    note: str = ""


class ReassignIn(BaseModel):
    """A queue, an agent or both (at least one, not blank)."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        str_max_length=200,
        json_schema_extra={
            "anyOf": [{"required": [name], "properties": {name: {"pattern": "\\S"}}} for name in ("queue", "agent")]
        },
    )

    queue: str = ""
    agent: str = ""

    @model_validator(mode="after")
    def _one_named(self) -> ReassignIn:
        if not self.queue and not self.agent:
            raise ValueError("name a queue, an agent or both")
        return self


class PlanIn(BaseModel):
    """A migration plan: each old step to a new step, ``exit`` or ``stay``; the rest by default."""

    model_config = ConfigDict(extra="forbid", str_max_length=200)

    steps: dict[str, str] = Field(default_factory=dict, description="old step -> new step, exit or stay")
    default: Literal["stay", "exit"] = "stay"
    from_versions: list[int] | None = Field(None, description="only enrolments on these versions")


class PublishIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=1000)

    dry_run: bool = True
    message: str = ""
    plan: PlanIn | None = Field(None, description="how enrolments on older versions move to the new one")


class StatusIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=1000)

    reason: str = ""


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


# ---- keys and roles -----------------------------------------------------------------------


def _caller(request: Request, creds: HTTPAuthorizationCredentials | None) -> Caller:
    if creds is None or creds.scheme.lower() != "bearer":
        raise ApiProblem(401, "send an API key: Authorization: Bearer <key>")
    caller: Caller | None = request.app.state.access.authenticate(creds.credentials)
    if caller is None:
        raise ApiProblem(401, "the API key is unknown or revoked")
    request.state.caller = caller
    return caller


def allow(*roles: Role) -> Callable[..., Caller]:
    """A dependency: the caller, whose key's role is one of ``roles`` (or admin)."""
    allowed = {Role.ADMIN, *roles}

    def check(request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Caller:
        caller = _caller(request, creds)
        if caller.role not in allowed:
            raise ApiProblem(403, f"the {caller.role} role may not do this (allowed: {', '.join(sorted(allowed))})")
        return caller

    return check


Admin = Annotated[Caller, Depends(allow())]
Marketer = Annotated[Caller, Depends(allow(Role.MARKETER))]
Agent = Annotated[Caller, Depends(allow(Role.AGENT))]
Integrator = Annotated[Caller, Depends(allow(Role.INTEGRATOR))]
Reader = Annotated[Caller, Depends(allow(Role.MARKETER, Role.AGENT))]
ConsentTaker = Annotated[Caller, Depends(allow(Role.INTEGRATOR, Role.AGENT))]
Items = Annotated[
    list[Any] | dict[str, Any],
    Body(description=f"one object, or an array of up to {MAX_BATCH} (the columns of the file import)"),
]


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


def _lead_routes(router: APIRouter, engine: Engine, settings: Settings) -> None:
    """Leads in (one or a batch), out (one with its timeline; a filtered list), consent, events."""
    tz = ZoneInfo(settings.timezone)
    region = settings.default_phone_region

    def resolve(ref: str) -> UUID:
        try:
            return engine.leads.find_lead(lead_ref(ref, region))
        except ValueError as e:  # names no lead: there is no such resource
            raise ApiProblem(404, f"no such lead: {e}") from None
        except HuokeError as e:
            raise ApiProblem(404, str(e)) from None

    def batch(items: list[Any] | dict[str, Any], source: str, importer: Callable[..., ImportReport]) -> BatchResult:
        rows = items if isinstance(items, list) else [items]
        if len(rows) > MAX_BATCH:
            raise ApiProblem(413, f"{len(rows):,} items in one call; send at most {MAX_BATCH:,} per batch")
        numbered: Iterable[tuple[int, dict[str, Any] | str]] = (
            (n, row if isinstance(row, dict) and not _holds_nul(row) else _bad_item(row))
            for n, row in enumerate(rows, 1)
        )
        report = importer(engine, source, region, tz, rows=numbered)
        return batch_result(report, len(rows))

    @router.post("/leads", tags=["leads"], response_model=BatchResult, response_model_by_alias=True)
    def create_leads(items: Items, caller: Integrator) -> BatchResult:
        """Create or update leads: the same fields, validation and per-item errors as
        ``huoke leads import``; valid items are kept, bad ones are listed."""
        return batch(items, f"api:{caller.name}", import_leads)

    @router.get("/leads", tags=["leads"])
    def list_leads(
        _: Marketer,
        stage: Stage | None = None,
        audience: Audience | None = None,
        segment: Annotated[str | None, Query(max_length=64, pattern=r"^[a-z][a-z0-9_]*$")] = None,
        source: Annotated[SourceChannel | None, Query(description="source channel")] = None,
        partner: Annotated[str | None, Query(max_length=200)] = None,
        after: Annotated[str, Query(description="the last lead id of the previous page", pattern=LEAD_ID_OR_NONE)] = "",
        limit: int = Query(100, ge=1, le=1000),
    ) -> dict[str, Any]:
        """Leads matching every filter, by id; page on with ``after`` = the ``next`` of a page
        (every match is on some page: the filters are applied page by page to the end)."""
        engine.refresh_views()
        named = (("stage", stage), ("audience", audience), ("source", source), ("partner", partner))
        filters = {k: str(v.value if isinstance(v, Enum) else v) for k, v in named if v}
        return {"schema": "huoke.leads/1", **list_leads_page(engine, filters, segment, after, limit)}

    @router.get("/leads/{ref}", tags=["leads"])
    def get_lead(ref: str, _: Reader) -> dict[str, Any]:
        """A lead by id, phone, e-mail or source_channel:external_id: its timeline with every reason."""
        engine.refresh_views()
        lead_id = resolve(ref)
        return {"schema": "huoke.lead/1", **lead_timeline(engine, lead_id)}

    @router.post("/leads/{ref}/consent", tags=["leads"])
    def change_consent(ref: str, body: ConsentIn, caller: ConsentTaker) -> dict[str, Any]:
        """Consent given or withdrawn, with its evidence; a withdrawal applies before the next send."""
        lead_id = resolve(ref)
        source = body.source or f"api:{caller.name}"
        if body.purpose == "tracking":
            changed = engine.leads.set_tracking(lead_id, body.channel, body.action == "grant", source, body.evidence)
            return {"lead_id": str(lead_id), "channel": body.channel, "action": body.action, "changed": changed}
        if body.action == "withdraw":
            engine.leads.opt_out(lead_id, body.channel, source, body.evidence)
            changed = True
        elif body.channel == "all":
            raise ApiProblem(422, "grant consent one channel at a time (email, sms or phone)")
        else:
            changed = engine.leads.grant_consent(lead_id, body.channel, source, body.evidence)
        return {"lead_id": str(lead_id), "channel": body.channel, "action": body.action, "changed": changed}

    @router.post("/events", tags=["events"], response_model=BatchResult, response_model_by_alias=True)
    def record_events(items: Items, caller: Integrator) -> BatchResult:
        """Lifecycle events (applications, approvals, funding, repayments, opt-outs…): the columns
        of ``huoke events import``; applying the same event again changes nothing."""
        return batch(items, f"api:{caller.name}", import_lifecycle)


def _task_routes(router: APIRouter, engine: Engine) -> None:
    """Loan officers' tasks: list, claim, complete, reassign."""

    @router.get("/tasks", tags=["tasks"])
    def list_tasks(
        _: Agent,
        queue: str | None = Query(None, max_length=200),
        include_done: bool = False,
    ) -> dict[str, Any]:
        """Call and visit tasks with what an officer needs on the call (as ``huoke tasks list``)."""
        engine.refresh_views()
        return {"schema": "huoke.tasks/1", "tasks": task_documents(engine, queue, include_done)}

    def task_doc(task: Any) -> dict[str, Any]:
        return {
            "task_id": str(task.id),
            "lead_id": str(task.lead_id),
            "queue": task.queue,
            "agent": task.agent,
            "outcome": task.outcome,
        }

    @router.post("/tasks/{task_id}/claim", tags=["tasks"])
    def claim(task_id: str, caller: Agent) -> dict[str, Any]:
        """The calling officer (the key's name) takes the task."""
        engine.refresh_views()
        return task_doc(claim_task(engine, task_id, caller.name, caller.role is Role.ADMIN))

    @router.post("/tasks/{task_id}/complete", tags=["tasks"])
    def complete(task_id: str, body: CompleteIn, caller: Agent) -> dict[str, Any]:
        """Done, with its outcome (``opted_out`` withdraws consent on every channel)."""
        engine.refresh_views()
        return task_doc(complete_task(engine, task_id, body.outcome, body.note, caller.name, caller.role is Role.ADMIN))

    @router.post("/tasks/{task_id}/reassign", tags=["tasks"])
    def reassign(task_id: str, body: ReassignIn, caller: Agent) -> dict[str, Any]:
        """Hand the task to another queue or officer of the desk."""
        if not body.queue and not body.agent:
            raise ApiProblem(422, "name a queue, an agent or both")
        engine.refresh_views()
        return task_doc(reassign_task(engine, task_id, body.queue, body.agent, caller.name, caller.role is Role.ADMIN))


def _journey_routes(router: APIRouter, engine: Engine, settings: Settings) -> None:
    """Journeys: list, validate, publish (dry run and plan), pause, resume."""

    @router.get("/journeys", tags=["journeys"])
    def list_journeys(_: Marketer) -> dict[str, Any]:
        """Published journeys: live version, status, entries so far and leads in them now."""
        return {
            "schema": "huoke.journeys/1",
            "journeys": journeys_overview(engine, workshop.folder_definitions(FolderWorkshop(settings))),
        }

    @router.post("/journeys/validate", tags=["journeys"])
    def validate_journeys(_: Marketer) -> dict[str, Any]:
        """Validate the journeys folder, its configuration and templates (``journeys validate``)."""
        return workshop.validation(FolderWorkshop(settings))

    @router.post("/journeys/{journey_id}/test-send", tags=["journeys"])
    def test_send(journey_id: str, body: TestSendIn, caller: Marketer) -> dict[str, Any]:
        """Send a step's real message, rendered for a real lead, through the real channel to an
        address or phone on the seed list (``HUOKE_TEST_RECIPIENTS``) only, marked [TEST]; never on
        the lead's timeline, in a report or against a cap (``journeys test-send``)."""
        engine.journeys.refresh_live()
        live = engine.journeys.live.get(journey_id)
        if live is None:
            raise ApiProblem(404, f"no journey {journey_id!r} is published")
        try:
            lead_id = engine.leads.find_lead(lead_ref(body.lead, settings.default_phone_region))
        except (ValueError, HuokeError) as e:
            raise ApiProblem(404, str(e)) from None
        try:
            sent = send_trial(engine, live.journey, body.step, lead_id, body.to, settings.seed_list, engine.clock.now())
        except TrialSendError as e:
            raise ApiProblem(422, str(e)) from None
        return {"schema": "huoke.test-send/1", "journey_id": journey_id, "step": body.step, **trial_dict(sent)}

    @router.post("/journeys/publish", tags=["journeys"])
    def publish(body: PublishIn, caller: Marketer) -> dict[str, Any]:
        """Publish every changed journey as a new version (``dry_run`` by default: shows the plan's
        moves and who would receive a message again, changes nothing)."""
        try:
            plan = MigrationPlan.from_dict(body.plan.model_dump()) if body.plan is not None else None
            reports = workshop.publish_folder(
                engine, FolderWorkshop(settings), f"api:{caller.name}", body.message, plan, body.dry_run
            )
        except JourneyValidationError as e:
            raise ApiProblem(422, "nothing was published: the journeys are invalid", problems=e.problems) from None
        except MigrationPlanError as e:  # the plan names steps the journeys as they are do not have
            raise ApiProblem(409, str(e)) from None
        return {"schema": "huoke.publish/1", "dry_run": body.dry_run, "journeys": reports}

    def status_route(action: str) -> Callable[..., dict[str, Any]]:
        def change(journey_id: str, body: StatusIn, caller: Marketer) -> dict[str, Any]:
            status = change_status(engine, journey_id, action, f"api:{caller.name}", body.reason)
            return {"journey_id": journey_id, "status": status}

        change.__doc__ = f"{action.capitalize()} a journey."
        return change

    for action in ("pause", "resume"):
        router.add_api_route(
            f"/journeys/{{journey_id}}/{action}",
            status_route(action),
            methods=["POST"],
            tags=["journeys"],
            name=f"{action}_journey",
        )


def _report_routes(router: APIRouter, engine: Engine, access: Access, settings: Settings) -> None:
    """The report documents and the audit trail."""

    @router.get("/reports/{name}", tags=["reports"])
    def report(
        _: Marketer,
        name: ReportName,
        since: str = Query(
            "",
            max_length=10,
            description="leads captured on or after this day (2026-03-01)",
            json_schema_extra={"pattern": DAY},
        ),
        until: str = Query(
            "", max_length=10, description="leads captured on or before this day", json_schema_extra={"pattern": DAY}
        ),
        channel: Annotated[SourceChannel | None, Query(description="first-touch source channel")] = None,
        journey: str = Query("", max_length=100, description="a published journey's id (404 when none was)"),
        touch: Literal["first", "last"] = "first",
        as_of: Annotated[
            datetime | None,
            Query(
                description="the report as it stood then (from the event log)", json_schema_extra={"pattern": MOMENT}
            ),
        ] = None,
    ) -> dict[str, Any]:
        """The document of ``huoke report NAME --json`` (the same options)."""
        try:
            scope = scope_from(
                {"since": since, "until": until, "channel": channel.value if channel else "", "journey": journey,
                 "touch": touch},
                empty_ok=True,
            )  # fmt: skip
            if as_of is not None:
                check_day(as_of, "as_of")
        except FilterError as e:
            raise ApiProblem(422, str(e)) from None
        try:
            check_journey(engine, scope)
        except FilterError as e:  # names a journey that does not exist
            raise ApiProblem(404, str(e)) from None
        moment = None
        if as_of is not None:
            moment = as_of if as_of.tzinfo else as_of.replace(tzinfo=ZoneInfo(settings.timezone))
        return report_document(name, engine, settings, scope, moment)

    @router.get("/audit", tags=["audit"])
    def audit(_: Admin, limit: int = Query(1000, ge=1, le=10000)) -> dict[str, Any]:
        """The latest state-changing calls: key, role, action, target, status, client, time."""
        return {"schema": "huoke.audit/1", "entries": access.audit(limit=limit)}


def batch_result(report: ImportReport, received: int) -> BatchResult:
    """Per-item results of a batch, in the order the items came."""
    errors: dict[int, list[ItemProblem]] = {}
    for e in report.errors:
        errors.setdefault(e.line, []).append(ItemProblem(field=e.field, problem=e.problem))
    applied = {line: (status, lead) for line, status, lead in report.applied}
    items = []
    for n in range(1, received + 1):
        if n in errors:
            items.append(ItemResult(index=n, status="refused", errors=errors[n]))
        elif n in applied:
            status, lead = applied[n]
            items.append(ItemResult(index=n, status=status, lead_id=lead))
    return BatchResult(
        received=received,
        created=report.created,
        updated=report.updated,
        unchanged=report.unchanged,
        refused=len(errors),
        items=items,
        flagged=[{"index": p.line, "field": p.field, "problem": p.problem} for p in report.flagged],
        conflicts=[{"index": p.line, "field": p.field, "problem": p.problem} for p in report.conflicts],
    )


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
