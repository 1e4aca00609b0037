"""The API's routes: leads in and out (one or a batch, a filtered list, consent, lifecycle events),
officers' tasks, journeys (list, validate, test-send, publish, pause, resume), the report
documents and the audit trail. Each parses, calls one use case and answers its document."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from enum import Enum
from typing import Annotated, Any, Literal
from uuid import UUID
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials

from engine.application.access import Access, Caller
from engine.application.engine import Engine
from engine.application.journeys import workshop
from engine.application.journeys.publishing import MigrationPlan, change_status
from engine.application.journeys.tasks import claim_task, complete_task, reassign_task, task_documents, task_summary
from engine.application.journeys.trial_sends import TrialSendError, send_trial
from engine.application.journeys.trial_sends import as_dict as trial_dict
from engine.application.leads.listing import list_leads_page
from engine.application.leads.timeline import lead_timeline
from engine.application.report_catalog import FilterError, ReportName, check_day, check_journey, scope_from
from engine.application.reports import journeys_overview
from engine.bootstrap import FolderWorkshop
from engine.bootstrap.importing import ImportReport, find_lead, import_leads, import_lifecycle
from engine.bootstrap.reports import report_document
from engine.domain.access.api_key import Role
from engine.domain.shared.errors import (
    HuokeError,
    JourneyValidationError,
    MigrationPlanError,
)
from engine.domain.shared.values import Audience, SourceChannel, Stage
from engine.entrypoints.api_wire import (
    DAY,
    LEAD_ID_OR_NONE,
    MAX_BATCH,
    MOMENT,
    ApiProblem,
    BatchResult,
    CompleteIn,
    ConsentIn,
    PublishIn,
    ReassignIn,
    StatusIn,
    TestSendIn,
    _bad_item,
    _holds_nul,
    batch_result,
    bearer,
)
from engine.settings import Settings

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


def _lead_routes(router: APIRouter, engine: Engine, settings: Settings) -> None:
    """Leads in (one or a batch), out (one with its timeline; a filtered list), consent, events."""
    tz = ZoneInfo(settings.timezone)
    region = settings.default_phone_region

    def resolve(ref: str) -> UUID:
        try:
            return find_lead(engine, ref, region)
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
        grant = body.action == "grant"
        changed = engine.leads.change_consent(lead_id, body.channel, body.purpose, grant, source, body.evidence)
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

    @router.post("/tasks/{task_id}/claim", tags=["tasks"])
    def claim(task_id: str, caller: Agent) -> dict[str, Any]:
        """The calling officer (the key's name) takes the task."""
        engine.refresh_views()
        return task_summary(claim_task(engine, task_id, caller.name, caller.role is Role.ADMIN))

    @router.post("/tasks/{task_id}/complete", tags=["tasks"])
    def complete(task_id: str, body: CompleteIn, caller: Agent) -> dict[str, Any]:
        """Done, with its outcome (``opted_out`` withdraws consent on every channel)."""
        engine.refresh_views()
        return task_summary(
            complete_task(engine, task_id, body.outcome, body.note, caller.name, caller.role is Role.ADMIN)
        )

    @router.post("/tasks/{task_id}/reassign", tags=["tasks"])
    def reassign(task_id: str, body: ReassignIn, caller: Agent) -> dict[str, Any]:
        """Hand the task to another queue or officer of the desk."""
        if not body.queue and not body.agent:
            raise ApiProblem(422, "name a queue, an agent or both")
        engine.refresh_views()
        return task_summary(
            reassign_task(engine, task_id, body.queue, body.agent, caller.name, caller.role is Role.ADMIN)
        )


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
            lead_id = find_lead(engine, body.lead, settings.default_phone_region)
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
