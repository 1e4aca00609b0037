"""The HTTP API under /api/v1 with real keys on the test's store (SQLite and PostgreSQL): batches
with per-item errors, lookups, consent, tasks, journeys and reports; every role against every
route; problem documents for every refusal; the audit trail of every change."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from engine.adapters.clock import VirtualClock
from engine.application.access import Access
from engine.application.engine import Engine
from engine.bootstrap import access_for
from engine.domain.shared.values import ConsentChannel, ConsentPurpose
from engine.entrypoints.http import create_app
from engine.settings import Settings
from tests.conftest import POSTGRES_URL, MakeEngine, base_settings
from tests.helpers import TEST_LINK_KEY

ROLES = ("admin", "marketer", "agent", "integrator")
LEAD = {
    "source_channel": "web_form",
    "external_id": "f-1",
    "name": "Wang Fang",
    "phone": "13800138001",
    "email": "wang.fang@example.com",
    "birth_year": "1994",
    "employment_type": "salaried",
    "monthly_income": "18000",
    "loan_type": "consumer",
    "loan_amount": "50000",
    "consent_email": "true",
    "partner": "",
}


class Api:
    """A test client and one key per role."""

    def __init__(self, engine: Engine, access: Access, settings: Settings) -> None:
        from engine.application.delivery.links import LinkKeys

        self.engine, self.access = engine, access
        self.client = TestClient(create_app(engine, LinkKeys(TEST_LINK_KEY), "CN", None, "", api=(access, settings)))
        self.keys = {role: access.create_key(f"{role}-key", role, "test")[1] for role in ROLES}

    def call(self, method: str, path: str, role: str | None = "admin", **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.keys[role]}"} if role else {}
        return self.client.request(method, f"/api/v1{path}", headers=headers, **kwargs)


@pytest.fixture
def api(make_engine: MakeEngine, tmp_path: Path, clock: VirtualClock, store: str, request: Any) -> Iterator[Api]:
    engine = make_engine()
    overrides = {}
    if store == "postgres":
        overrides["database_url"] = f"{POSTGRES_URL}?schema={request.getfixturevalue('pg_schema')}"
    settings = base_settings(tmp_path, **overrides)
    access = access_for(settings, clock)
    yield Api(engine, access, settings)
    access.close()


def lead(n: int, **changes: Any) -> dict[str, Any]:
    return {**LEAD, "external_id": f"f-{n}", "phone": f"138001380{n:02d}", "email": f"lead{n}@example.com", **changes}


def test_a_batch_keeps_the_valid_items_and_says_what_is_wrong_with_each_other(api: Api) -> None:
    items = [lead(1), lead(2, phone="12", email="not-an-email"), lead(3, loan_amount="lots"), "not an object"]
    r = api.call("POST", "/leads", "integrator", json=items)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert (doc["schema"], doc["received"], doc["created"], doc["refused"]) == ("huoke.batch/1", 4, 1, 3)
    by_index = {i["index"]: i for i in doc["items"]}
    assert by_index[1]["status"] == "created" and by_index[1]["lead_id"]
    assert by_index[2]["status"] == "refused" and by_index[2]["errors"]  # no usable contact
    assert by_index[3]["errors"][0]["field"] == "loan_amount"
    assert by_index[4]["errors"] == [{"field": "row", "problem": "each item must be a JSON object"}]
    # The same item again changes nothing; one object (not an array) is a batch of one.
    again = api.call("POST", "/leads", "integrator", json=lead(1)).json()
    assert (again["unchanged"], again["items"][0]["lead_id"]) == (1, by_index[1]["lead_id"])
    # Found by any reference, with its timeline and reasons.
    for ref in (by_index[1]["lead_id"], "+8613800138001", "lead1@example.com", "web_form:f-1"):
        shown = api.call("GET", f"/leads/{ref}", "agent")
        assert shown.status_code == 200 and shown.json()["schema"] == "huoke.lead/1"
        assert shown.json()["lead"]["id"] == by_index[1]["lead_id"]


def test_too_big_a_batch_is_refused_whole_with_a_problem_document(api: Api) -> None:
    r = api.call("POST", "/leads", "integrator", json=[lead(1)] * 1001)
    assert r.status_code == 413 and r.headers["content-type"] == "application/problem+json"
    assert "at most 1,000" in r.json()["detail"]
    assert api.call("GET", "/leads", "marketer").json()["leads"] == []


def test_leads_list_filters_and_pages(api: Api) -> None:
    items = [lead(n, partner="lianjia" if n % 2 else "") for n in range(1, 8)]
    assert api.call("POST", "/leads", "integrator", json=items).json()["created"] == 7
    seen: list[str] = []
    after = ""
    while True:
        page = api.call("GET", "/leads", "marketer", params={"partner": "lianjia", "limit": 2, "after": after}).json()
        seen += [row["lead_id"] for row in page["leads"]]
        assert all(row["partner"] == "lianjia" for row in page["leads"])
        if page["next"] is None:
            break
        after = page["next"]
    assert len(seen) == len(set(seen)) == 4 and seen == sorted(seen)
    assert len(api.call("GET", "/leads", "marketer", params={"stage": "new"}).json()["leads"]) == 7
    assert api.call("GET", "/leads", "marketer", params={"source": "car_dealer"}).json()["leads"] == []


def test_paging_by_segment_finds_every_member_however_sparse(api: Api) -> None:
    """Three mortgage seekers among thirty leads, one per page: every one is found (the list used
    to read ten leads per page asked and then answer ``next: null``, dropping the rest)."""
    items = [lead(n, loan_type="mortgage" if n % 10 == 0 else "consumer") for n in range(1, 31)]
    assert api.call("POST", "/leads", "integrator", json=items).json()["created"] == 30
    api.engine.run(until=api.engine.clock.now())  # the screening view knows the segments
    seen: list[str] = []
    after = ""
    while True:
        params = {"segment": "mortgage_interest", "limit": 1, "after": after}
        page = api.call("GET", "/leads", "marketer", params=params).json()
        seen += [row["lead_id"] for row in page["leads"]]
        if page["next"] is None:
            break
        after = page["next"]
    assert len(seen) == len(set(seen)) == 3


def test_events_consent_and_tasks(api: Api) -> None:
    lead_id = api.call("POST", "/leads", "integrator", json=lead(1)).json()["items"][0]["lead_id"]
    event = {
        "type": "application_submitted",
        "phone": "+8613800138001",
        "application_id": "A1",
        "loan_type": "consumer",
        "amount": "50000",
    }
    first = api.call("POST", "/events", "integrator", json=[event]).json()
    assert first["updated"] == 1, first
    assert api.call("POST", "/events", "integrator", json=[event]).json()["unchanged"] == 1  # applied once
    assert api.engine.leads.get_lead(UUID(lead_id)).stage.value == "applied"
    # Consent withdrawn with its evidence: recorded at once.
    body = {"channel": "email", "action": "withdraw", "evidence": "asked by phone, call 118"}
    r = api.call("POST", f"/leads/{lead_id}/consent", "agent", json=body)
    assert r.status_code == 200 and r.json()["changed"]
    assert not api.engine.leads.get_lead(UUID(lead_id)).has_consent(ConsentChannel.EMAIL, ConsentPurpose.MARKETING)
    bad = api.call("POST", f"/leads/{lead_id}/consent", "agent", json={**body, "channel": "fax"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "channel"


def test_journeys_and_reports(api: Api) -> None:
    journeys = api.call("GET", "/journeys", "marketer").json()["journeys"]
    assert journeys and all(j["status"] == "live" for j in journeys)
    assert api.call("POST", "/journeys/validate", "marketer").json()["valid"] is True
    dry = api.call("POST", "/journeys/publish", "marketer", json={}).json()
    assert dry["dry_run"] is True and all(not j["changed"] for j in dry["journeys"])
    jid = journeys[0]["id"]
    assert (
        api.call("POST", f"/journeys/{jid}/pause", "marketer", json={"reason": "budget"}).json()["status"] == "paused"
    )
    assert api.call("POST", f"/journeys/{jid}/resume", "marketer", json={}).json()["status"] == "live"
    missing = api.call("POST", "/journeys/nope/pause", "marketer", json={})
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
    from engine.application.reports import funnel_report, journeys_report

    assert api.call("GET", "/reports/funnel", "marketer").json() == json.loads(json.dumps(funnel_report(api.engine)))
    assert api.call("GET", "/reports/journeys", "marketer").json() == json.loads(
        json.dumps(journeys_report(api.engine))
    )
    from engine.application.analytics import Scope, attribution_report

    web = api.call("GET", "/reports/attribution?channel=web_form&touch=last", "marketer").json()
    assert web == json.loads(json.dumps(attribution_report(api.engine, Scope(channel="web_form", touch="last"))))
    bad = api.call("GET", "/reports/daily?since=2026-02-30", "marketer")
    assert bad.status_code == 422 and "since: expected a day like 2026-03-31" in bad.json()["detail"]
    typo = api.call("GET", "/reports/flows?journey=nope", "marketer")
    assert typo.status_code == 404 and "journey: no journey 'nope' was published" in typo.json()["detail"]
    assert api.call("GET", "/reports/costs", "agent").status_code == 403


#: Every route, the roles (besides admin) that may call it, and a body.
ROUTES: list[tuple[str, str, set[str], Any]] = [
    ("POST", "/leads", {"integrator"}, []),
    ("GET", "/leads", {"marketer"}, None),
    ("GET", "/leads/+8613800138001", {"marketer", "agent"}, None),
    (
        "POST",
        "/leads/+8613800138001/consent",
        {"integrator", "agent"},
        {"channel": "sms", "action": "withdraw", "evidence": "matrix"},
    ),
    ("POST", "/events", {"integrator"}, []),
    ("GET", "/tasks", {"agent"}, None),
    ("POST", "/tasks/0000/claim", {"agent"}, None),
    ("POST", "/tasks/0000/complete", {"agent"}, {"outcome": "reached"}),
    ("POST", "/tasks/0000/reassign", {"agent"}, {"queue": "x"}),
    ("GET", "/journeys", {"marketer"}, None),
    ("POST", "/journeys/validate", {"marketer"}, None),
    ("POST", "/journeys/publish", {"marketer"}, {"dry_run": True}),
    ("POST", "/journeys/nope/pause", {"marketer"}, {}),
    ("POST", "/journeys/nope/resume", {"marketer"}, {}),
    ("POST", "/journeys/young-professionals/test-send", {"marketer"}, {"step": "x", "lead": "f-9", "to": "a@b.cn"}),
    ("GET", "/reports/funnel", {"marketer"}, None),
    ("GET", "/audit", set(), None),
]


def test_every_role_against_every_route(api: Api) -> None:
    api.call("POST", "/leads", "integrator", json=lead(1))
    api.access.revoke("integrator-key", "test", "left the company")
    for method, path, roles, body in ROUTES:
        kwargs = {"json": body} if body is not None else {}
        nobody = api.call(method, path, None, **kwargs)
        assert nobody.status_code == 401 and nobody.headers["content-type"] == "application/problem+json", path
        forged = api.client.request(method, f"/api/v1{path}", headers={"Authorization": "Bearer hk_forged"}, **kwargs)
        assert forged.status_code == 401, path
        for role in ROLES:
            r = api.call(method, path, role, **kwargs)
            if role == "integrator":  # revoked: refused whatever the route
                assert r.status_code == 401, (role, path)
            elif role == "admin" or role in roles:
                assert r.status_code not in (401, 403) and r.status_code < 500, (role, path, r.text)
            else:
                assert r.status_code == 403, (role, path)
                assert r.headers["content-type"] == "application/problem+json"


def test_every_change_is_an_audit_entry(api: Api) -> None:
    api.call("POST", "/leads", "integrator", json=lead(1))
    api.call("POST", "/leads", "marketer", json=lead(2))  # refused: still recorded
    api.call("POST", "/leads", None, json=lead(3))  # no key: recorded without one
    api.call("GET", "/leads", "marketer")  # reading changes nothing: not recorded
    entries = api.call("GET", "/audit", "admin").json()["entries"]
    assert [(e["key"], e["role"], e["action"], e["status"]) for e in entries] == [
        ("integrator-key", "integrator", "create_leads", 200),
        ("marketer-key", "marketer", "create_leads", 403),
        ("", "", "create_leads", 401),
    ]
    assert all(e["target"] == "/api/v1/leads" and e["client"] for e in entries)


def test_the_audit_trail_names_a_lead_by_id_or_keyed_hash_never_by_phone_or_email(api: Api) -> None:
    lead_id = api.call("POST", "/leads", "integrator", json=lead(1)).json()["items"][0]["lead_id"]
    body = {"channel": "email", "action": "withdraw", "evidence": "asked by phone"}
    for ref in ("+8613800138001", "lead1@example.com", lead_id):
        assert api.call("POST", f"/leads/{ref}/consent", "agent", json=body).status_code == 200
    targets = [e["target"] for e in api.call("GET", "/audit", "admin").json()["entries"]][1:]
    assert targets[2] == f"/api/v1/leads/{lead_id}/consent"
    assert all(t.startswith("/api/v1/leads/ref#") and t.endswith("/consent") for t in targets[:2])
    assert targets[0] != targets[1]  # the phone and the e-mail are told apart, and neither is shown
    assert not any("138001" in t or "@" in t for t in targets)


def test_openapi_served_and_no_input_yields_a_server_error(api: Api) -> None:
    """Schemathesis over /openapi.json with an admin key: generated requests to every route
    (bounded examples), none answered with a 5xx."""
    import schemathesis

    api.call("POST", "/leads", "integrator", json=lead(1))
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.client.app)
    headers = {"Authorization": f"Bearer {api.keys['admin']}"}
    failures: list[str] = []
    tried: set[str] = set()
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]
        if operation.path.startswith("/api/v1"):
            _fuzz(operation, headers, tried, failures)
    assert failures == [], "\n\n".join(failures)
    assert len(tried) == len(ROUTES)  # every route of the API was called


def _fuzz(operation: Any, headers: dict[str, str], tried: set[str], failures: list[str]) -> None:
    """Bounded generated requests to one operation, valid and invalid (schemathesis's positive
    and negative modes); every check schemathesis has (server errors, status codes and media
    types the document declares, response schemas and headers, valid data accepted and invalid
    data refused, ``Allow`` on 405), each failure collected."""
    from schemathesis import GenerationMode

    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        _fuzz_mode(operation, mode, headers, tried, failures)


def _fuzz_mode(operation: Any, mode: Any, headers: dict[str, str], tried: set[str], failures: list[str]) -> None:
    import hypothesis

    name = f"{operation.method.upper()} {operation.path}"

    @hypothesis.settings(
        max_examples=12,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        response = case.call(headers=headers)
        tried.add(name)
        try:
            case.validate_response(response, headers=headers)
        except Exception as e:  # collected: every route is tried
            failures.append(f"{name} ({mode.value}): {e}"[:600])

    run()


def test_keys_are_made_listed_and_revoked_from_the_cli_and_audited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`huoke api-keys create --json` prints the key once; the store keeps only its hash; a
    revoked key is refused; `huoke audit list --json` shows the calls."""
    import json

    from typer.testing import CliRunner

    from engine.entrypoints.cli import app
    from engine.settings import Settings
    from tests.helpers import cli_environment

    cli_environment(tmp_path, monkeypatch)
    runner = CliRunner()
    assert runner.invoke(app, ["db", "init"]).exit_code == 0
    made = runner.invoke(app, ["api-keys", "create", "--role", "integrator", "--name", "web-forms", "--json"])
    assert made.exit_code == 0, made.output
    key = json.loads(made.output)["key"]
    assert key.startswith("hk_") and len(key) > 40
    assert key not in "".join(p.read_bytes().decode("latin-1") for p in (tmp_path / "data").glob("*.db"))
    bad = runner.invoke(app, ["api-keys", "create", "--role", "boss", "--name", "x"])
    assert bad.exit_code == 1 and "unknown role 'boss'" in bad.output
    settings = Settings()
    access = access_for(settings)
    from engine.application.delivery.links import LinkKeys
    from engine.bootstrap import bootstrap

    engine = bootstrap(settings)
    client = TestClient(create_app(engine, LinkKeys(TEST_LINK_KEY), "CN", None, "", api=(access, settings)))
    headers = {"Authorization": f"Bearer {key}"}
    assert client.post("/api/v1/leads", headers=headers, json=lead(1)).json()["created"] == 1
    listed = json.loads(runner.invoke(app, ["api-keys", "list", "--json"]).output)["keys"]
    assert [(k["name"], k["role"], k["revoked_at"]) for k in listed] == [("web-forms", "integrator", "")]
    assert runner.invoke(app, ["api-keys", "revoke", "web-forms", "--reason", "rotated"]).exit_code == 0
    assert client.post("/api/v1/leads", headers=headers, json=lead(2)).status_code == 401
    audit = json.loads(runner.invoke(app, ["audit", "list", "--json"]).output)["entries"]
    assert [(e["key"], e["status"]) for e in audit] == [("web-forms", 200), ("", 401)]
    assert "web-forms" in runner.invoke(app, ["audit", "list"]).output
    engine.close()
    access.close()


def test_public_pages_stay_pages_beside_the_api(api: Api) -> None:
    """The API's problem documents do not leak onto the pages a lead opens: a bad link is a page."""
    r = api.client.get("/unsubscribe/7519d62d-27d0-5bbb-8d11-2579f7613fce/email/bad", headers={"Accept-Language": "en"})
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert "This link is not valid" in r.text and "Huoke Lending" in r.text


def test_an_agent_acts_only_on_tasks_they_hold_unless_a_team_lead_or_admin(api: Api, clock: VirtualClock) -> None:
    """Every task route with another officer's key: refused (403), and the task and the lead are
    as they were; the holder, a team lead of the queue, and an admin may."""
    keys = {name: api.access.create_key(name, "agent", "test")[1] for name in ("li.na", "zhao.min", "liu.yang")}

    def as_(name: str, method: str, path: str, **kwargs: Any) -> Any:
        return api.client.request(method, f"/api/v1{path}", headers={"Authorization": f"Bearer {keys[name]}"}, **kwargs)

    task_ids = []
    for n in (1, 2):
        lead_id = api.call("POST", "/leads", "integrator", json=lead(n)).json()["items"][0]["lead_id"]
        event = {
            "type": "application_submitted",
            "lead_id": lead_id,
            "application_id": f"A{n}",
            "loan_type": "consumer",
            "amount": "50000",
        }
        assert api.call("POST", "/events", "integrator", json=[event]).json()["updated"] == 1
    api.engine.run(until=clock.now() + timedelta(days=6))  # no decision in five days: call tasks
    tasks = api.call("GET", "/tasks").json()["tasks"]
    task_ids = [t["task_id"] for t in tasks]
    assert len(task_ids) == 2
    for task_id in task_ids:  # an admin hands both to li.na
        assert (
            api.call(
                "POST", f"/tasks/{task_id}/reassign", json={"queue": "loan_officers", "agent": "li.na"}
            ).status_code
            == 200
        )
    first, second = task_ids
    before = api.engine.journeys.repository.get(UUID(first)).version
    for method, path, body in (
        ("POST", f"/tasks/{first}/claim", None),
        ("POST", f"/tasks/{first}/complete", {"outcome": "opted_out", "note": "not really"}),
        ("POST", f"/tasks/{first}/reassign", {"queue": "loan_officers", "agent": "zhao.min"}),
    ):
        refused = as_("zhao.min", method, path, json=body)
        assert refused.status_code == 403, (path, refused.text)
        assert refused.headers["content-type"] == "application/problem+json"
        assert "li.na" in refused.json()["detail"]
    assert api.engine.journeys.repository.get(UUID(first)).version == before  # nothing recorded
    lead_ids = {t["task_id"]: t["lead"]["id"] for t in tasks}
    assert api.engine.leads.fresh_lead(UUID(lead_ids[first])).has_consent(
        ConsentChannel.EMAIL, ConsentPurpose.MARKETING
    )
    assert as_("li.na", "POST", f"/tasks/{first}/claim").status_code == 200
    done = as_("li.na", "POST", f"/tasks/{first}/complete", json={"outcome": "reached"})
    assert done.status_code == 200 and done.json()["outcome"] == "reached"
    # A team lead of the queue (loan_officers escalates to team_leads, which liu.yang works).
    lead_done = as_("liu.yang", "POST", f"/tasks/{second}/complete", json={"outcome": "no_answer"})
    assert lead_done.status_code == 200 and lead_done.json()["outcome"] == "no_answer"


def test_a_marketer_test_sends_to_the_seed_list_only(api: Api, tmp_path: Path) -> None:
    from engine.application.delivery.links import LinkKeys
    from tests.conftest import settings_of
    from tests.helpers import emails

    api.call("POST", "/leads", "integrator", json=lead(1))
    body = {"step": "welcome_email", "lead": "+8613800138001", "to": "anna@lender.example"}
    refused = api.call("POST", "/journeys/young-professionals/test-send", "marketer", json=body)
    assert refused.status_code == 422 and "not on the test recipients' list" in refused.json()["detail"]
    seeded = settings_of(api.engine).model_copy(update={"test_recipients": "anna@lender.example"})
    client = TestClient(create_app(api.engine, LinkKeys(TEST_LINK_KEY), "CN", None, "", api=(api.access, seeded)))
    headers = {"Authorization": f"Bearer {api.keys['marketer']}"}
    sent = client.post("/api/v1/journeys/young-professionals/test-send", json=body, headers=headers)
    assert sent.status_code == 200 and sent.json()["sent"] and sent.json()["subject"].startswith("[TEST] ")
    [eml] = emails(tmp_path / "outbox")
    assert (
        b"To: anna@lender.example" in eml.read_bytes()
        and b"X-Huoke-Test: journey young-professionals" in eml.read_bytes()
    )
    not_a_send = client.post("/api/v1/journeys/young-professionals/test-send", json={**body, "step": "wait_3d"},
                             headers=headers)  # fmt: skip
    assert not_a_send.status_code == 422
    actions = [e["action"] for e in api.call("GET", "/audit", "admin").json()["entries"]]
    assert actions.count("test_send") == 3  # every try is an audit entry
