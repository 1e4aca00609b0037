"""The huoke CLI as a marketer uses it: import with errors, run, report, show, validate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from engine.entrypoints.cli import app
from tests.helpers import ALL_CONFIG, ROOT, cli_environment, journeys_folder

SIMPLE_JOURNEY = """
    id: simple
    vars: {apply_url: "https://lender.example/apply"}
    entry: {on: lead_captured}
    steps:
      - id: hello
        send: {channel: sms, template: yp_welcome}
"""

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cli_environment(tmp_path, monkeypatch)
    set_up()
    return tmp_path


def set_up() -> None:
    """What an operator does once: create the tables, publish the bundled journeys."""
    for args in (["db", "init"], ["journeys", "publish"]):
        done = runner.invoke(app, args)
        assert done.exit_code == 0, done.output


HEADER = "source_channel,external_id,name,phone,email,language,birth_year,employment_type,consent_email,consent_sms,"
LEADS_CSV = (
    HEADER
    + """captured_at
web_form,W1,Alex Chen,13800138001,alex@example.com,en,1996,salaried,yes,yes,2026-03-02T10:00
car_dealer,D1,张三,12345,not-an-email,zh-CN,1980,salaried,yes,yes,2026-03-02T10:00
web_form,W2,Li Na,13800138002,lina@example,zh-CN,1994,salaried,yes,yes,2026-03-02T10:00
fax,X1,Bob,,bob@example.com,en,1990,salaried,yes,no,2026-03-02T10:00
offline_fair,F1,王建国,13900139001,,zh-CN,1955,retired,no,yes,2026-03-02T10:00
"""
)


def test_import_keeps_valid_rows_and_names_line_and_field_of_bad_ones(env: Path) -> None:
    path = env / "leads.csv"
    path.write_text(LEADS_CSV, encoding="utf-8")
    result = runner.invoke(app, ["leads", "import", str(path), "--json"])
    assert result.exit_code == 1, result.output  # two rows refused (the valid ones kept): as every import
    doc = json.loads(result.stdout)
    assert (doc["rows"], doc["created"], doc["refused"]) == (5, 3, 2)
    errors = {(e["line"], e["field"]) for e in doc["errors"]}
    assert errors == {(3, "phone/email"), (5, "source_channel")}
    assert doc["flagged"][0]["line"] == 4 and "e-mail 'lina@example' is invalid" in doc["flagged"][0]["problem"]
    again = json.loads(runner.invoke(app, ["leads", "import", str(path), "--json"]).stdout)
    assert (again["created"], again["unchanged"]) == (0, 3)


def test_import_table_output_and_unknown_file(env: Path) -> None:
    path = env / "leads.csv"
    path.write_text(LEADS_CSV, encoding="utf-8")
    result = runner.invoke(app, ["leads", "import", str(path)])
    assert "3 new" in result.stdout and "Refused rows" in result.stdout
    missing = runner.invoke(app, ["leads", "import", str(env / "nope.csv")])
    assert missing.exit_code == 1 and "no such file" in missing.stderr


def test_run_report_and_show(env: Path) -> None:
    path = env / "leads.csv"
    path.write_text(LEADS_CSV, encoding="utf-8")
    runner.invoke(app, ["leads", "import", str(path)])
    assert runner.invoke(app, ["run", "--until", "2026-03-03"]).exit_code == 0
    events = env / "events.jsonl"
    events.write_text(
        json.dumps(
            {
                "type": "application_submitted",
                "phone": "13800138001",
                "application_id": "A1",
                "amount": 50000,
                "at": "2026-03-04T09:00",
            }
        )
        + "\n"
        + "{broken json\n"
        + json.dumps(
            {
                "type": "loan_funded",
                "source_channel": "web_form",
                "external_id": "W9",
                "application_id": "A1",
                "amount": 50000,
            }
        )
        + "\n",
        encoding="utf-8",
    )
    imported = json.loads(runner.invoke(app, ["events", "import", str(events), "--json"]).stdout)
    assert imported["updated"] == 1
    assert [(e["line"], e["field"]) for e in imported["errors"]] == [(2, "row"), (3, "event")]
    ran = runner.invoke(app, ["run", "--until", "2026-04-15", "--json"])
    assert ran.exit_code == 0, ran.output
    assert json.loads(ran.stdout)["sent"] > 0
    report = json.loads(runner.invoke(app, ["report", "funnel", "--json"]).stdout)
    assert report["schema"] == "huoke.report.funnel/1" and report["leads"] == 3
    applied = next(r for r in report["funnel"] if r["stage"] == "applied")
    assert applied["total"] == 1
    shown = json.loads(runner.invoke(app, ["leads", "show", "web_form:W1", "--json"]).stdout)
    assert shown["schema"] == "huoke.lead/1" and shown["lead"]["stage"] == "applied"
    assert shown["enrolments"][0]["status"] == "exited: goal_reached"
    table = runner.invoke(app, ["leads", "show", "+8613800138001"])
    assert "left journey" in table.stdout and "goal_reached" in table.stdout.replace("\n", "")
    assert runner.invoke(app, ["report", "funnel"]).stdout.count("Conversion funnel") == 1
    rebuilt = runner.invoke(app, ["projections", "rebuild"])
    assert rebuilt.exit_code == 0 and "rebuilt funnel, journey_index" in rebuilt.stdout
    assert json.loads(runner.invoke(app, ["report", "funnel", "--json"]).stdout) == report


def test_validate_lists_every_problem(env: Path, tmp_path: Path) -> None:
    ok = runner.invoke(app, ["journeys", "validate", "--json"])
    assert ok.exit_code == 0 and len(json.loads(ok.stdout)["journeys"]) == 10
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "id: bad\nentry: {on: lead_captured}\nsteps:\n  - id: a\n    send: {channel: sms, template: gone}\n"
        "    next: b\n  - id: c\n    wait: 1d\n"
    )
    result = runner.invoke(app, ["journeys", "validate", str(bad)])
    assert result.exit_code == 1
    assert f"{bad}:4: step 'a': leads to unknown step 'b'" in result.stderr


def test_validate_takes_a_folder_or_its_files_and_keeps_configuration_apart(env: Path, tmp_path: Path) -> None:
    """`validate journeys` and `validate journeys/*.yaml` agree; configuration files are not
    mistaken for journeys; a bad configuration file is named with its line."""
    folder = runner.invoke(app, ["journeys", "validate", str(ROOT / "journeys"), "--json"])
    files = runner.invoke(
        app, ["journeys", "validate", *map(str, sorted((ROOT / "journeys").glob("*.yaml"))), "--json"]
    )
    assert folder.exit_code == files.exit_code == 0
    assert json.loads(folder.stdout)["journeys"] == json.loads(files.stdout)["journeys"]
    named = runner.invoke(app, ["journeys", "validate", str(ROOT / "journeys" / "config" / "segments.yaml")])
    assert named.exit_code == 1 and "a configuration file, not a journey" in named.stderr
    mine = journeys_folder(tmp_path, config=ALL_CONFIG, j=SIMPLE_JOURNEY)
    (mine / "config" / "contact_policy.yaml").write_text("unknown_zone: {start: '25:00', end: '20:00'}\n")
    broken = runner.invoke(app, ["journeys", "validate", str(mine), "--json"])
    assert broken.exit_code == 1
    problems = json.loads(broken.stdout)["problems"]
    assert problems and all(p.startswith(str(mine / "config" / "contact_policy.yaml")) for p in problems)


def test_show_unknown_lead_is_a_clear_error(env: Path) -> None:
    result = runner.invoke(app, ["leads", "show", "web_form:nobody"])
    assert result.exit_code == 1 and "no captured lead matches" in result.stderr


def test_sms_replies_and_receipts_import(env: Path) -> None:
    path = env / "leads.csv"
    path.write_text(LEADS_CSV, encoding="utf-8")
    runner.invoke(app, ["leads", "import", str(path)])
    assert runner.invoke(app, ["run", "--until", "2026-03-03"]).exit_code == 0
    sms = [json.loads(line) for line in (env / "outbox" / "sms.jsonl").read_text().splitlines()]
    receipts = env / "receipts.csv"
    receipts.write_text(
        f"send_id,status,error_code\n{sms[0]['send_id']},delivered,\nnot-a-uuid,failed,30003\n", encoding="utf-8"
    )
    doc = json.loads(runner.invoke(app, ["sms", "import-receipts", str(receipts), "--json"]).stdout)
    assert doc["recorded"] == 1 and doc["errors"][0]["line"] == 3
    replies = env / "replies.csv"
    replies.write_text("from,body\n13800138001,ＴＤ\n13900139001,thanks\nnobody,STOP\n", encoding="utf-8")
    doc = json.loads(runner.invoke(app, ["sms", "import-replies", str(replies), "--json"]).stdout)
    assert doc["opt_outs"] == 1 and doc["errors"] == [{"line": 4, "problem": "not a phone number: 'nobody'"}]
    shown = json.loads(runner.invoke(app, ["leads", "show", "web_form:W1", "--json"]).stdout)
    assert shown["lead"]["consents"]["sms:marketing"] is False


def test_command_lists_show_each_summary_as_flowing_text() -> None:
    """Every command list (huoke --help, huoke costs --help …) shows the first paragraph of each
    command's help as one flowing text: a docstring's line breaks made ragged half-empty lines."""
    import typer

    def commands(group: Any) -> list[Any]:
        found: list[Any] = []
        for command in group.commands.values():
            found.append(command)
            found.extend(commands(command) if hasattr(command, "commands") else [])
        return found

    every = commands(typer.main.get_group(app))
    assert len(every) > 60
    assert [c.name for c in every if "\n" in (c.short_help or "")] == []
    shown = runner.invoke(app, ["--help"], env={"COLUMNS": "80"}).stdout
    assert "│              at /openapi.json), the marketing dashboard at /dashboard (a     │" in shown.splitlines()


def test_run_until_a_moment_with_an_offset_leaves_later_leads_for_a_later_run(env: Path) -> None:
    """Leads captured on 11-04 are not processed by ``run --until 2026-11-03T08:00:00+08:00``
    (the moment is honoured exactly, offset and all); the next run reaches them."""
    path = env / "leads.csv"
    path.write_text(
        "source_channel,external_id,name,phone,email,language,birth_year,employment_type,consent_email,"
        "consent_sms,captured_at\n"
        "web_form,E1,Early Bird,13800138011,early@example.com,en,1995,salaried,yes,yes,2026-11-03T07:30:00+08:00\n"
        "web_form,L1,Late Comer,13800138012,late@example.com,en,1995,salaried,yes,yes,2026-11-04T10:00:00+08:00\n",
        encoding="utf-8",
    )
    assert runner.invoke(app, ["leads", "import", str(path)]).exit_code == 0
    first = json.loads(runner.invoke(app, ["run", "--until", "2026-11-03T08:00:00+08:00", "--json"]).stdout)
    assert first["lead_events"] > 0  # the early one's
    late = json.loads(runner.invoke(app, ["leads", "show", "web_form:L1", "--json"]).stdout)
    assert not any(t["source"] == "journey" for t in late["timeline"])  # not enrolled yet
    early = json.loads(runner.invoke(app, ["leads", "show", "web_form:E1", "--json"]).stdout)
    assert any(t["source"] == "journey" for t in early["timeline"])
    assert runner.invoke(app, ["run", "--until", "2026-11-05"]).exit_code == 0
    late = json.loads(runner.invoke(app, ["leads", "show", "web_form:L1", "--json"]).stdout)
    assert any(t["source"] == "journey" for t in late["timeline"])


def _one_lead(path: Path, external_id: str, phone: str, captured_at: str) -> Path:
    path.write_text(
        "source_channel,external_id,name,phone,email,language,birth_year,employment_type,consent_email,"
        f"consent_sms,captured_at\nweb_form,{external_id},Alex Chen,{phone},{external_id.lower()}@example.com,en,"
        f"1995,salaried,yes,yes,{captured_at}\n",
        encoding="utf-8",
    )
    return path


def test_a_store_on_its_own_clock_does_late_work_when_it_stands_not_back_in_time(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HUOKE_CLOCK=store (what the demo's huoke.env says): the store's work reached 11-25; a lead
    captured on 11-20 and imported now gets its first message at 11-25 or later, never dated
    11-20; an agent's opt-out is recorded when the store stands, not at the wall clock's date."""
    monkeypatch.setenv("HUOKE_CLOCK", "store")
    first = _one_lead(env / "a.csv", "A1", "13800138021", "2026-11-20T09:00:00+08:00")
    assert runner.invoke(app, ["leads", "import", str(first)]).exit_code == 0
    assert runner.invoke(app, ["run", "--until", "2026-11-25T12:00:00+08:00"]).exit_code == 0
    late = _one_lead(env / "b.csv", "B1", "13800138022", "2026-11-20T09:00:00+08:00")
    assert runner.invoke(app, ["leads", "import", str(late)]).exit_code == 0
    assert runner.invoke(app, ["run", "--until", "2026-11-26T12:00:00+08:00"]).exit_code == 0
    doc = json.loads(runner.invoke(app, ["leads", "show", "web_form:B1", "--json"]).stdout)
    sent = [t["at"] for t in doc["timeline"] if t["event"] == "Delivery.Sent"]
    assert sent and min(sent) >= "2026-11-25T04:00"  # UTC: 12:00 in Shanghai
    assert runner.invoke(app, ["consent", "opt-out", "web_form:A1", "--channel", "sms"]).exit_code == 0
    doc = json.loads(runner.invoke(app, ["leads", "show", "web_form:A1", "--json"]).stdout)
    [opted] = [t["at"] for t in doc["timeline"] if "opted out" in t["what"] or "withdrawn" in t["what"]]
    assert opted.startswith("2026-11-2")  # the store's time, not today's wall-clock date
