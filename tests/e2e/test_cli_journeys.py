"""Journey commands as a marketer uses them: list, publish (dry run, plan), pause, graph,
preview, simulate, tasks."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from engine.entrypoints.cli import app
from engine.entrypoints.cli_common import engine_for, settings
from tests.conftest import ROOT
from tests.e2e.test_cli import LEADS_CSV, set_up
from tests.helpers import cli_environment, sms_in_doubt, sms_lines, young_pro

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    journeys = tmp_path / "journeys"
    shutil.copytree(ROOT / "journeys", journeys)
    cli_environment(tmp_path, monkeypatch, journeys)
    set_up()
    (tmp_path / "leads.csv").write_text(LEADS_CSV, encoding="utf-8")
    assert runner.invoke(app, ["leads", "import", str(tmp_path / "leads.csv")]).exit_code == 1  # two rows refused
    assert runner.invoke(app, ["run", "--until", "2026-03-03"]).exit_code == 0
    return tmp_path


def invoke_json(*args: str) -> dict:  # type: ignore[type-arg]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_list_graph_and_preview(env: Path) -> None:
    journeys = {j["id"]: j for j in invoke_json("journeys", "list")["journeys"]}
    assert journeys["young-professionals"]["version"] == 1 and journeys["young-professionals"]["active"] == 2
    graph = runner.invoke(app, ["journeys", "graph", "young-professionals"])
    assert graph.stdout.startswith("flowchart TD") and "wait_3d<br/>wait 3d<br/><b>2 here</b>" in graph.stdout
    assert '-->|"engaged"|' in graph.stdout
    seen = invoke_json("journeys", "preview", "seniors-advisor", "--lead", "offline_fair:F1")
    assert seen["schema"] == "huoke.preview/2" and seen["entered"] and seen["version"] == 1
    messages = seen["messages"]
    assert [m["template"] for m in messages] == ["senior_advisor_call", "senior_reminder"]
    assert messages[0]["text"].startswith("【Huoke Lending】王建国您好")
    assert seen["path"][-1]["event"] == "Enrolment.Exited"
    refused = invoke_json("journeys", "preview", "young-professionals", "--lead", "offline_fair:F1")
    assert not refused["entered"] and refused["why"] == "entry filter did not match" and not refused["messages"]


def test_publish_dry_run_then_publish_with_a_plan(env: Path) -> None:
    path = env / "journeys" / "young_professionals.yaml"
    path.write_text(
        path.read_text()
        .replace("wait: 3d", "wait: 2d")
        .replace("id: wait_3d", "id: wait_2d")
        .replace("next: wait_3d", "next: wait_2d"),
        encoding="utf-8",
    )
    listed = invoke_json("journeys", "list")["journeys"]
    assert next(j for j in listed if j["id"] == "young-professionals")["unpublished_changes"] is True
    plan = env / "plan.yaml"
    plan.write_text("steps:\n  wait_3d: wait_2d\n", encoding="utf-8")
    dry = invoke_json("journeys", "publish", str(path), "--dry-run", "--plan", str(plan))["journeys"][0]
    assert (dry["dry_run"], dry["version"]) == (True, 2)
    assert dry["moves"] == [{"from_version": 1, "from_step": "wait_3d", "to": "wait_2d", "enrolments": 2}]
    live = {j["id"]: j for j in invoke_json("journeys", "list")["journeys"]}
    assert live["young-professionals"]["version"] == 1  # a dry run changes nothing
    done = invoke_json("journeys", "publish", str(path), "--plan", str(plan), "-m", "faster nudge")["journeys"][0]
    assert (done["dry_run"], done["version"], done["changed"]) == (False, 2, True)
    again = invoke_json("journeys", "publish", str(path))["journeys"][0]
    assert again["changed"] is False
    bad_plan = env / "bad.yaml"
    bad_plan.write_text("steps:\n  wait_3d: nowhere\n", encoding="utf-8")
    (env / "journeys" / "young_professionals.yaml").write_text(path.read_text().replace("wait: 4d", "wait: 5d"))
    refused = runner.invoke(app, ["journeys", "publish", str(path), "--plan", str(bad_plan)])
    assert refused.exit_code == 1 and "nowhere" in refused.stderr


def test_pause_resume_archive(env: Path) -> None:
    assert "sme-one-stop is paused" in runner.invoke(app, ["journeys", "pause", "sme-one-stop"]).stdout
    twice = runner.invoke(app, ["journeys", "pause", "sme-one-stop"])
    assert twice.exit_code == 1 and "is paused, not live" in twice.stderr
    assert "is live" in runner.invoke(app, ["journeys", "resume", "sme-one-stop"]).stdout
    assert "is archived" in runner.invoke(app, ["journeys", "archive", "sme-one-stop", "--reason", "x"]).stdout
    unknown = runner.invoke(app, ["journeys", "pause", "nope"])
    assert unknown.exit_code == 1 and "never published" in unknown.stderr


def test_simulate_from_a_file_and_from_the_store(env: Path) -> None:
    sim = invoke_json("simulate", "young-professionals", "--leads", str(env / "leads.csv"), "--days", "20")
    assert sim["schema"] == "huoke.simulation/1" and sim["entered"] == 2
    assert sim["steps"]["welcome_sms"] == 2
    stored = invoke_json("simulate", "young-professionals", "--from-store", "--days", "20")
    assert stored["entered"] == sim["entered"]
    table = runner.invoke(app, ["simulate", "young-professionals", "--from-store", "--compare", "1", "1"])
    assert table.exit_code == 0 and "Per step" in table.stdout
    neither = runner.invoke(app, ["simulate", "young-professionals"])
    assert neither.exit_code == 2 and "--leads FILE or --from-store" in neither.stderr


def test_tasks_list(env: Path) -> None:
    doc = invoke_json("tasks", "list")
    assert doc["schema"] == "huoke.tasks/1" and isinstance(doc["tasks"], list)


def test_a_loan_officer_claims_hands_on_and_completes_a_task(env: Path) -> None:
    assert runner.invoke(app, ["run", "--until", "2026-03-03"]).exit_code == 0
    tasks = invoke_json("tasks", "list")["tasks"]
    assert tasks, "the seniors' journey gives advisors call tasks"
    task = tasks[0]
    assert task["lead"]["name"] and task["lead"]["phone"] and task["note"]
    # The desk routed it to the senior advisor who speaks the lead's language and has room.
    assert (task["status"], task["routed_to"], task["queue"]) == ("assigned", "sun.li", "senior_advisors")
    assert task["overdue_at"] == "2026-03-04T02:00:00+00:00"  # created 03-02 02:00 UTC, SLA 2d
    listed = runner.invoke(app, ["tasks", "list"])
    ref = str(task["task_id"])[:8]
    due = datetime.fromisoformat(task["due_at"].replace("Z", "+00:00")).astimezone(ZoneInfo("Asia/Shanghai"))
    # A card per task at 80 columns: what, queue and when (the lender's time; past its service
    # level by the wall clock), who to call, why.
    assert f"{ref}  call · senior_advisors · due {due:%Y-%m-%d %H:%M}  OVERDUE" in listed.stdout
    assert f"  {task['lead']['name']} ({task['lead']['language']})  {task['lead']['phone']}" in listed.stdout
    assert "times in Asia/Shanghai" in listed.stderr and max(len(x) for x in listed.stdout.splitlines()) <= 80
    taken = runner.invoke(app, ["tasks", "claim", ref, "--agent", "wang"])
    assert taken.exit_code == 1 and "routed to sun.li: only they or a team lead may act on it" in taken.stderr
    assert runner.invoke(app, ["tasks", "claim", ref, "--agent", "sun.li"]).exit_code == 0
    taken = runner.invoke(app, ["tasks", "claim", ref, "--agent", "li.na"])
    assert taken.exit_code == 1 and "claimed by sun.li: only they or a team lead may act on it" in taken.stderr
    nowhere = runner.invoke(app, ["tasks", "reassign", ref, "--queue", "branch_sh", "--agent", "sun.li"])
    assert nowhere.exit_code == 1 and "no queue 'branch_sh' on the desk" in nowhere.stderr
    moved = runner.invoke(
        app, ["tasks", "reassign", ref, "--queue", "loan_officers", "--to", "li.na", "--agent", "sun.li"]
    )
    assert moved.exit_code == 0 and "claimed by li.na" in moved.stdout
    wrong = runner.invoke(app, ["tasks", "complete", ref, "--outcome", "maybe", "--agent", "li.na"])
    assert wrong.exit_code == 1 and "unknown outcome 'maybe'" in wrong.stderr
    done = runner.invoke(
        app, ["tasks", "complete", ref, "--outcome", "opted_out", "--note", "no more", "--agent", "li.na"]
    )
    assert done.exit_code == 0 and "opted_out" in done.stdout
    assert runner.invoke(app, ["run", "--until", "2026-03-26"]).exit_code == 0
    after = {t["task_id"]: t for t in invoke_json("tasks", "list", "--all")["tasks"]}[task["task_id"]]
    assert (after["status"], after["agent"], after["queue"], after["outcome"], after["escalations"]) == (
        "done",
        "li.na",
        "loan_officers",
        "opted_out",
        0,  # done within the service level: never escalated
    )
    assert task["task_id"] not in {t["task_id"] for t in invoke_json("tasks", "list")["tasks"]}
    lead = invoke_json("leads", "show", task["lead"]["id"])["lead"]
    assert lead["consents"] and not any(lead["consents"].values())  # opted out on every channel


def test_an_operator_reviews_and_releases_a_message_held_in_doubt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With HUOKE_IN_DOUBT=hold, an SMS marked as leaving just before a crash is held; the
    operator lists it, checks the provider's log and releases it: it goes out once, in the
    lead's next contact window (the operator works on the wall clock, so the last run reaches a
    day ahead: at 20:07 in Shanghai the released SMS waits for the morning)."""
    cli_environment(tmp_path, monkeypatch)
    set_up()
    monkeypatch.setenv("HUOKE_IN_DOUBT", "hold")
    engine = engine_for(settings())
    try:
        [out] = engine.leads.capture_leads([young_pro(77)])
        sms = sms_in_doubt(engine, out.lead_id)  # type: ignore[arg-type]
    finally:
        engine.close()
    assert runner.invoke(app, ["run"]).exit_code == 0
    [held] = invoke_json("messages", "review")["messages"]
    assert (held["send_id"], held["channel"], held["to"]) == (str(sms.id), "sms", young_pro(77).contact["phone"])
    undecided = runner.invoke(app, ["messages", "release", held["send_id"][:8]])
    assert undecided.exit_code == 1 and "--resend (it did not leave) or --was-sent (it did)" in undecided.stderr
    released = runner.invoke(app, ["messages", "release", held["send_id"][:8], "--resend", "--note", "not in log"])
    assert released.exit_code == 0 and "released" in released.stdout
    tomorrow = (datetime.now(UTC) + timedelta(hours=25)).isoformat(timespec="minutes")
    assert runner.invoke(app, ["run", "--until", tomorrow]).exit_code == 0
    sent = [line["send_id"] for line in sms_lines(tmp_path / "outbox")]
    assert sent.count(str(sms.id)) == 1 and invoke_json("messages", "review")["messages"] == []


def test_a_draft_is_drawn_previewed_and_backtested_from_its_file(env: Path) -> None:
    """A journey nobody published: the same commands take its file, validate it and say so."""
    draft = env / "draft.yaml"
    draft.write_text(
        (env / "journeys" / "seniors.yaml")
        .read_text(encoding="utf-8")
        .replace("id: seniors-advisor", "id: seniors-draft"),
        encoding="utf-8",
    )
    graph = runner.invoke(app, ["journeys", "graph", str(draft)])
    assert graph.exit_code == 0 and graph.stdout.startswith("flowchart TD") and "seniors-draft" in graph.stdout
    assert f"using the draft {draft}" in " ".join(graph.stderr.split())
    seen = invoke_json("journeys", "preview", str(draft), "--lead", "offline_fair:F1")
    assert seen["version"] == "draft" and seen["entered"]
    assert [m["template"] for m in seen["messages"]] == ["senior_advisor_call", "senior_reminder"]
    sim = invoke_json("simulate", str(draft), "--leads", str(env / "leads.csv"), "--days", "20")
    assert sim["journey_id"] == "seniors-draft" and sim["entered"] >= 1
    broken = env / "broken.yaml"
    broken.write_text("id: x\nsteps: []\n", encoding="utf-8")
    refused = runner.invoke(app, ["journeys", "graph", str(broken)])
    assert refused.exit_code == 1 and "broken.yaml is not valid" in refused.stderr


def test_a_test_send_reaches_the_seed_inbox_and_leaves_the_lead_and_reports_alone(
    env: Path, monkeypatch: pytest.MonkeyPatch, mail_server: Any
) -> None:
    sink, port, _ = mail_server
    monkeypatch.setenv("HUOKE_EMAIL_TRANSPORT", "smtp")
    monkeypatch.setenv("HUOKE_SMTP_PORT", str(port))
    monkeypatch.setenv("HUOKE_TEST_RECIPIENTS", "anna@lender.example, +8613700000000")
    before = invoke_json("leads", "show", "web_form:W1")["timeline"]
    funnel = invoke_json("report", "engagement")
    refused = runner.invoke(app, ["journeys", "test-send", "young-professionals", "--step", "welcome_email",
                                  "--lead", "web_form:W1", "--to", "alex@example.com"])  # fmt: skip
    assert refused.exit_code == 2 and "not on the test recipients' list" in refused.stderr
    not_a_send = runner.invoke(app, ["journeys", "test-send", "young-professionals", "--step", "wait_3d",
                                     "--lead", "web_form:W1", "--to", "anna@lender.example"])  # fmt: skip
    assert not_a_send.exit_code == 2 and "does not send an e-mail or SMS" in not_a_send.stderr
    sent = invoke_json("journeys", "test-send", "young-professionals", "--step", "welcome_email",
                       "--lead", "web_form:W1", "--to", "anna@lender.example")  # fmt: skip
    assert sent["sent"] and sent["subject"].startswith("[TEST] ")
    assert sink.by_recipient()["anna@lender.example"] == 1 and sink.by_recipient()["alex@example.com"] == 0
    assert invoke_json("leads", "show", "web_form:W1")["timeline"] == before  # never on the lead's timeline
    assert invoke_json("report", "engagement") == funnel  # nor in a report
    audit = invoke_json("audit", "list")["entries"]
    assert [(e["action"], e["status"]) for e in audit] == [("test_send", 200)]
    assert "anna@" not in audit[0]["target"] and "young-professionals/welcome_email" in audit[0]["target"]


def test_diff_shows_what_a_draft_changes_and_where_the_leads_would_go(env: Path) -> None:
    path = env / "journeys" / "young_professionals.yaml"
    path.write_text(
        path.read_text()
        .replace("wait: 3d", "wait: 2d")
        .replace("id: wait_3d", "id: wait_2d")
        .replace("next: wait_3d", "next: wait_2d")
        .replace("template: yp_last_call", "template: yp_finish_application"),
        encoding="utf-8",
    )
    diff = invoke_json("journeys", "diff", str(path))
    assert (diff["added"], diff["removed"]) == (["wait_2d"], ["wait_3d"])
    assert "welcome_email" in diff["changed"] or "budget_first" in diff["changed"]  # they now lead to wait_2d
    assert {"step": "last_call", "from": "yp_last_call", "to": "yp_finish_application"} in diff["templates"]
    assert diff["leads_now"] == {"wait_3d": 2} and diff["moves"] == []
    plan = env / "plan.yaml"
    plan.write_text("steps:\n  wait_3d: wait_2d\n", encoding="utf-8")
    planned = invoke_json("journeys", "diff", str(path), "--plan", str(plan))
    assert planned["moves"] == [{"from_version": 1, "from_step": "wait_3d", "to": "wait_2d", "enrolments": 2}]
    listed = {j["id"]: j for j in invoke_json("journeys", "list")["journeys"]}
    assert listed["young-professionals"]["version"] == 1  # nothing was published


def test_preview_of_a_made_up_lead_shows_when_each_message_would_leave_and_why(env: Path) -> None:
    """No lead needed: --set describes one. Entered at 21:30 Shanghai, its SMS and e-mail wait for
    the contact window's opening at 09:00 the next morning, and say so."""
    facts = ["birth_year=1996", "employment_type=salaried", "monthly_income=25000", "loan_type=consumer",
             "loan_amount=80000", "language=en"]  # fmt: skip
    args = [a for f in facts for a in ("--set", f)]
    seen = invoke_json("journeys", "preview", str(env / "journeys" / "young_professionals.yaml"), *args,
                       "--at", "2026-03-02T21:30", "--days", "2")  # fmt: skip
    assert seen["entered"] and seen["lead"]["audience"] == "young_professional"
    assert seen["lead"]["offer"]["name"]  # product matching ran: an offer fits
    first = next(m for m in seen["messages"] if m["channel"] == "sms")
    assert first["at"].startswith("2026-03-03T01:00")  # 09:00 in Shanghai
    assert any("outside contact window 09:00-20:00 Asia/Shanghai" in h for h in first["held"])
    bad = runner.invoke(app, ["journeys", "preview", "young-professionals", "--set", "salary=1"])
    assert bad.exit_code == 2 and "--set salary: not a fact a lead is captured with" in bad.stderr
    refused = invoke_json("journeys", "preview", "young-professionals", "--set", "birth_year=1950",
                          "--set", "employment_type=retired")  # fmt: skip
    assert not refused["entered"] and refused["why"]


def test_preview_of_a_journey_entered_on_an_application_or_a_funding(env: Path) -> None:
    """A journey entered on a lifecycle event is previewed as the lead reaching it: its own
    application (from its interest), approved and funded as the entry needs, one minute on."""
    facts = ["birth_year=1990", "employment_type=salaried", "monthly_income=30000", "loan_type=consumer",
             "loan_amount=80000", "language=en"]  # fmt: skip
    args = [a for f in facts for a in ("--set", f)]
    for name, journey_id in (("application_follow_up", "application-follow-up"), ("after_funding", "after-funding")):
        seen = invoke_json("journeys", "preview", str(env / "journeys" / f"{name}.yaml"), *args,
                           "--at", "2026-03-02T10:00", "--days", "35")  # fmt: skip
        assert seen["journey_id"] == journey_id and seen["entered"], (journey_id, seen["why"])
        assert seen["path"][0]["what"].startswith(f"entered journey {journey_id}")
        assert seen["messages"], journey_id  # the follow-up e-mail; the satisfaction SMS a month on
