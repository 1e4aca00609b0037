"""Hostile and careless input, as an attacker or a tired operator gives it: every bad file or row
gets a clear, short error naming where it is; valid rows are kept; nothing hangs or grows."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.adapters.model_data import OutputFileError, write_rows
from engine.adapters.yaml_files import MAX_NODES, load_yaml
from engine.domain.shared.errors import JourneyValidationError
from engine.entrypoints.cli import app
from tests.e2e.test_cli import set_up
from tests.helpers import cli_environment

runner = CliRunner()

BOMB = "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9 if prev else ['lol'] * 9)}]\n"
    for prev, name in zip(["", "a", "b", "c", "d", "e", "f", "g", "h"], "abcdefghi", strict=True)
)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cli_environment(tmp_path, monkeypatch)
    set_up()
    return tmp_path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(JourneyValidationError) as e:
        load_yaml(path)
    return e.value.problems


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (BOMB, f"1:1: YAML: expands to more than {MAX_NODES:,} values (an alias bomb?)"),
        ("a:\n" + "".join("  " * i + "b:\n" for i in range(1, 80)), "YAML: nested more than 50 levels deep"),
        ("id: one\nname: x\nid: two\n", "3:1: YAML: key 'id' appears twice in one mapping (first on line 1)"),
        ("steps:\n  - {id: a, id: b}\n", "key 'id' appears twice"),
    ],
)
def test_hostile_yaml_is_refused_at_once_with_its_line(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "j.yaml"
    path.write_text(text, encoding="utf-8")
    started = time.process_time()
    [found] = problems_of(path)
    assert problem in found and found.startswith(str(path))
    assert time.process_time() - started < 5  # generous: the bomb used to grow past 1 GB and hang


def test_yaml_that_is_not_utf8_or_too_big_is_refused(tmp_path: Path) -> None:
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("id: x\nname: caf\xe9\n".encode("latin-1"))
    assert problems_of(latin) == [f"{latin}:2: not UTF-8 text (byte 0xe9); save the file as UTF-8"]
    big = tmp_path / "big.yaml"
    big.write_text("x: " + "y" * 2_000_000, encoding="utf-8")
    assert "a definition file may have 1,048,576" in problems_of(big)[0]


def test_journeys_validate_reports_a_bomb_as_a_problem_not_a_traceback(env: Path) -> None:
    (env / "bomb.yaml").write_text(BOMB, encoding="utf-8")
    result = runner.invoke(app, ["journeys", "validate", str(env / "bomb.yaml")])
    assert result.exit_code == 1 and "alias bomb" in result.stderr and "Traceback" not in result.output


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(rows)
    return path


HEAD = ["source_channel", "external_id", "name", "phone", "email", "consent_sms"]


def test_an_oversized_field_fails_its_row_only_and_the_rows_after_it_are_kept(env: Path) -> None:
    path = write_csv(
        env / "leads.csv",
        [
            HEAD,
            ["web_form", "H1", "Ann", "+8613800138000", "ann@example.com", "yes"],
            ["web_form", "H2", "X" * 200_000, "+8613800138001", "x@example.com", "yes"],
            ["web_form", "H3", "Y" * 5_000, "+8613800138002", "y@example.com", "yes"],
            ["web_form", "H4", "Carl", "+8613800138003", "carl@example.com", "yes"],
        ],
    )
    result = runner.invoke(app, ["leads", "import", str(path), "--json"])
    doc = json.loads(result.stdout)
    assert (doc["created"], doc["refused"]) == (2, 2)
    [huge, long] = doc["errors"]
    assert huge["line"] == 3 and "fields may hold 128 KiB" in huge["problem"]
    assert long["line"] == 4 and long["field"] == "name" and "(5,000 characters)" in long["problem"]
    assert len(result.stdout) < 2_000  # an error quotes a short prefix, never the whole value


def test_duplicate_csv_headers_refuse_the_file_and_write_nothing(env: Path) -> None:
    path = write_csv(env / "dup.csv", [[*HEAD, "name"], ["web_form", "D1", "Ann", "+8613800138000", "", "yes", "Bo"]])
    result = runner.invoke(app, ["leads", "import", str(path)])
    assert result.exit_code == 1 and f"{path}:1: column name appears more than once in the header" in result.stderr
    shown = runner.invoke(app, ["leads", "show", "+8613800138000"])
    assert shown.exit_code == 1 and "no captured lead matches" in shown.stderr  # nothing was written


def test_control_and_direction_characters_never_reach_a_name(env: Path) -> None:
    path = write_csv(
        env / "leads.csv",
        [HEAD, ["web_form", "C1", "Bob\u202egnp.exe\x00\x1b[31m Lee", "+8613800138009", "", "yes"]],
    )
    assert runner.invoke(app, ["leads", "import", str(path)]).exit_code == 0
    lead = json.loads(runner.invoke(app, ["leads", "show", "web_form:C1", "--json"]).stdout)["lead"]
    assert lead["name"] == "Bobgnp.exe[31m Lee"


def test_a_runaway_jsonl_line_fails_alone(env: Path) -> None:
    path = env / "leads.jsonl"
    good = {"source_channel": "web_form", "external_id": "J1", "name": "Ann", "phone": "+8613800138000"}
    path.write_text(
        json.dumps(good)
        + "\n"
        + '{"name": "'
        + "x" * 1_100_000
        + '"}\n'
        + json.dumps({**good, "external_id": "J2", "phone": "+8613800138001"})
        + "\n",
        encoding="utf-8",
    )
    doc = json.loads(runner.invoke(app, ["leads", "import", str(path), "--json"]).stdout)
    assert doc["created"] == 2 and [e["line"] for e in doc["errors"]] == [2]
    assert "a record may have 1,048,576" in doc["errors"][0]["problem"]


def test_a_deeply_nested_jsonl_line_fails_alone(env: Path) -> None:
    path = env / "leads.jsonl"
    good = {"source_channel": "web_form", "external_id": "J1", "name": "Ann", "phone": "+8613800138000"}
    lines = [
        json.dumps(good),
        "[" * 2000 + "]" * 2000,  # json.loads alone raises RecursionError on this
        '{"a": ' * 12 + "1" + "}" * 12,
        json.dumps({**good, "external_id": "J2", "phone": "+8613800138001"}),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = runner.invoke(app, ["leads", "import", str(path), "--json"])
    doc = json.loads(result.stdout)
    assert doc["created"] == 2 and [e["line"] for e in doc["errors"]] == [2, 3]
    assert all(e["problem"] == "nested more than 8 levels deep" for e in doc["errors"])


def test_files_huoke_writes_are_readable_by_their_owner_only(env: Path) -> None:
    path = write_csv(env / "leads.csv", [HEAD, ["web_form", "P1", "Ann", "+8613800138000", "ann@x.example", "yes"]])
    assert runner.invoke(app, ["leads", "import", str(path)]).exit_code == 0
    assert runner.invoke(app, ["run"]).exit_code == 0
    folders = [f for f in (env / "data", env / "outbox") if f.exists()]
    written = [p for folder in folders for p in folder.rglob("*")]
    assert any(p.name == "leads.db" for p in written)
    assert {p.stat().st_mode & 0o777 for p in written if p.is_file()} == {0o600}
    assert {p.stat().st_mode & 0o777 for p in [*folders, *written] if p.is_dir()} == {0o700}


def test_an_export_never_overwrites_without_force_and_never_carries_a_formula(env: Path, tmp_path: Path) -> None:
    precious = tmp_path / "q3.csv"
    precious.write_text("precious", encoding="utf-8")
    refused = runner.invoke(app, ["model", "score", "credit", "--csv", str(precious), "--out", str(precious)])
    assert refused.exit_code == 2 and "exists: choose another file, or pass --force" in refused.stderr
    assert precious.read_text(encoding="utf-8") == "precious"
    out = tmp_path / "scored.csv"
    write_rows(out, ["id", "name", "amount"], [["1", "=cmd|' /C calc'!A0", "-5"], ["2", "@SUM(A1)", "+12"]])
    with out.open(encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[1:] == [["1", "'=cmd|' /C calc'!A0", "-5"], ["2", "'@SUM(A1)", "+12"]]
    with pytest.raises(OutputFileError, match="exists"):
        write_rows(out, ["id"], [])


def test_an_export_into_a_missing_folder_or_through_a_link_is_a_plain_error(env: Path, tmp_path: Path) -> None:
    prospects = tmp_path / "prospects.csv"
    prospects.write_text("id,monthly_income\n1,9000\n", encoding="utf-8")
    missing = runner.invoke(
        app, ["model", "score", "credit", "--csv", str(prospects), "--out", str(tmp_path / "no" / "x.csv")]
    )
    assert missing.exit_code == 2 and "is not a folder: create it first" in missing.stderr
    assert "Traceback" not in missing.stderr + missing.stdout
    target = tmp_path / "target.csv"
    target.write_text("keep", encoding="utf-8")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    linked = runner.invoke(app, ["referrals", "payouts", "--out", str(link), "--force"])
    assert linked.exit_code == 2 and "is a symbolic link" in linked.stderr
    assert target.read_text(encoding="utf-8") == "keep" and link.is_symlink()
    (tmp_path / "payouts.csv.tmp").symlink_to(target)  # a trap where a predictable temporary name would go
    assert runner.invoke(app, ["referrals", "payouts", "--out", str(tmp_path / "payouts.csv")]).exit_code == 0
    assert target.read_text(encoding="utf-8") == "keep"


def test_reimporting_rows_that_share_a_phone_changes_nothing_and_never_redirects_a_leads_email(env: Path) -> None:
    head = ["source_channel", "external_id", "name", "phone", "email", "monthly_income", "consent_sms"]
    shared = "+8613800138100"
    path = write_csv(
        env / "leads.csv",
        [
            head,
            ["web_form", "S1", "Ann Wu", shared, "ann@x.example", "", "yes"],
            ["web_form", "S2", "Ann Wu", shared, "ann.wu@y.example", "18000", "yes"],
        ],
    )
    first = json.loads(runner.invoke(app, ["leads", "import", str(path), "--json"]).stdout)
    assert (first["created"], first["updated"]) == (1, 1)  # S2 is the same phone: merged, not a second lead
    assert [(c["line"], c["field"]) for c in first["conflicts"]] == [(3, "contact.email")]
    again = json.loads(runner.invoke(app, ["leads", "import", str(path), "--json"]).stdout)
    assert (again["created"], again["updated"], again["unchanged"], again["conflicts"]) == (0, 0, 2, [])
    lead = json.loads(runner.invoke(app, ["leads", "show", "web_form:S1", "--json"]).stdout)
    assert lead["lead"]["email"] == "ann@x.example"  # never flipped to the other row's address
    whats = [t["what"] for t in lead["timeline"]]
    assert "conflicting data from web_form:S2, not applied (email 'ann.wu@y.example')" in whats
    # A partner's row with the known phone fills what the lead lacked, and cannot redirect its e-mail.
    partner = write_csv(
        env / "partner.csv",
        [
            [*head, "partner"],
            ["car_dealer", "D9", "Ann Wu", shared, "attacker@z.example", "99000", "yes", "BYD Chaoyang 4S"],
        ],
    )
    doc = json.loads(runner.invoke(app, ["leads", "import", str(partner), "--json"]).stdout)
    assert [c["field"] for c in doc["conflicts"]] == ["contact.email", "profile.monthly_income"]
    lead = json.loads(runner.invoke(app, ["leads", "show", "web_form:S1", "--json"]).stdout)["lead"]
    assert lead["email"] == "ann@x.example"
    # The lead's own source may still correct it.
    own = write_csv(env / "own.csv", [head, ["web_form", "S1", "Ann Wu", shared, "ann@new.example", "", "yes"]])
    assert json.loads(runner.invoke(app, ["leads", "import", str(own), "--json"]).stdout)["updated"] == 1
    assert json.loads(runner.invoke(app, ["leads", "show", "web_form:S1", "--json"]).stdout)["lead"]["email"] == (
        "ann@new.example"
    )


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "SecurityError: access to attribute '__class__'"),
        ("{% for i in range(10**9) %}x{% endfor %}", "OverflowError: Range too big"),
        ("{{ first_name / 0 }}", "TypeError"),
    ],
)
def test_a_hostile_template_fails_its_message_and_never_the_sender(tmp_path: Path, text: str, reason: str) -> None:
    from engine.adapters.templates import JinjaRenderer
    from engine.application.ports import RenderError
    from tests.helpers import ROOT

    folder = tmp_path / "templates" / "sms"
    (folder / "evil").mkdir(parents=True)
    (folder / "evil" / "en.txt.j2").write_text(text, encoding="utf-8")
    (folder / "_layout").mkdir()
    for layout in (ROOT / "templates" / "sms" / "_layout").iterdir():
        (folder / "_layout" / layout.name).write_text(layout.read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(RenderError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        JinjaRenderer(tmp_path / "templates").render("sms", "evil", "general", "en", {"first_name": "Ann"})


def test_text_that_looks_like_terminal_markup_is_printed_as_given(env: Path) -> None:
    """A name, partner or cell value with square brackets is data, never rich markup: a lead
    named '[/]' made `leads show` and `report attribution` crash with a MarkupError."""
    path = env / "brackets.csv"
    path.write_text(
        "source_channel,external_id,name,phone,partner,consent_sms,birth_year\n"
        "car_dealer,D1,[/],13800138001,[bold]Auto[/bold] [/],yes,1990\n"
        "web_form,W1,Ann,13800138002,,yes,[red]x\n",
        encoding="utf-8",
    )
    imported = runner.invoke(app, ["leads", "import", str(path)])
    assert imported.exit_code == 1 and "'[red]x'" in imported.stdout  # the bad cell as written; the rest kept
    assert runner.invoke(app, ["run"]).exit_code == 0
    shown = runner.invoke(app, ["leads", "show", "car_dealer:D1"])
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.startswith("[/] ") and "[bold]Auto[/bold] [/]" in shown.stdout
    report = runner.invoke(app, ["report", "attribution", "--dimension", "partner"])
    assert report.exit_code == 0 and "[bold]Auto[/bold] [/]" in report.stdout
    refused = runner.invoke(app, ["report", "funnel", "--as-of", "[/]"])
    assert refused.exit_code == 2 and "got '[/]'" in refused.stderr
