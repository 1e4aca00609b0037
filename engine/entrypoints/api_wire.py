"""The API's wire schema: its documents in and out (pydantic models), the problem document every
error answers with, the patterns its parameters follow, and a batch's per-item results."""

from __future__ import annotations

from typing import Any, Literal

from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, model_validator

from engine.bootstrap.importing import ImportReport
from engine.domain.journeys.agent_task import OUTCOMES
from engine.domain.shared.errors import (
    HuokeError,
)
from engine.entrypoints.http_edge import PROBLEM, problem_document

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
