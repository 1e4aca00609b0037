"""Set-up and operations from the command line: db init, explicit publication, status."""

from __future__ import annotations

import csv
import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from demo.data import BACK_BOOK_COLUMNS, back_book
from engine.entrypoints.cli import app
from tests.helpers import cli_environment

runner = CliRunner()


@pytest.fixture
def bare(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh folder: nothing set up, nothing published."""
    cli_environment(tmp_path, monkeypatch)
    return tmp_path


def test_commands_ask_for_db_init_first(bare: Path) -> None:
    result = runner.invoke(app, ["report", "funnel"])
    assert result.exit_code == 1 and "run `huoke db init` first" in result.stderr
    first = json.loads(runner.invoke(app, ["db", "init", "--json"]).stdout)
    again = json.loads(runner.invoke(app, ["db", "init", "--json"]).stdout)
    # idempotent; a new SQLite store has HUOKE_PARTITIONS partitions (an embedded run and its helper share them)
    assert first == again and first["partitions"] == 8


def test_a_sqlite_store_made_before_sqlite_partitions_keeps_its_one(bare: Path) -> None:
    """Its followers' positions are kept under the logs' own names: eight partitions would read
    every log again from the start."""
    assert runner.invoke(app, ["db", "init"]).exit_code == 0
    with sqlite3.connect(bare / "data" / "huoke.db") as c:  # as such a store's set-up left it
        c.execute("DELETE FROM huoke_meta WHERE key = 'partitions'")
    again = json.loads(runner.invoke(app, ["db", "init", "--json"]).stdout)
    assert again["partitions"] == 1


def test_the_first_publish_can_be_a_dry_run_and_previews_publish_nothing(bare: Path) -> None:
    assert runner.invoke(app, ["db", "init"]).exit_code == 0
    dry = json.loads(runner.invoke(app, ["journeys", "publish", "--dry-run", "--json"]).stdout)
    assert dry["dry_run"] and {j["journey_id"] for j in dry["journeys"]} >= {"young-professionals"}
    listed = json.loads(runner.invoke(app, ["journeys", "list", "--json"]).stdout)
    assert listed["journeys"] == []  # nothing went live
    assert runner.invoke(app, ["journeys", "publish"]).exit_code == 0
    listed = json.loads(runner.invoke(app, ["journeys", "list", "--json"]).stdout)["journeys"]
    assert {j["id"]: j["version"] for j in listed}["young-professionals"] == 1


def test_model_training_from_a_csv_needs_no_journeys(bare: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUOKE_JOURNEYS_DIR", str(bare / "no-journeys-here"))
    assert runner.invoke(app, ["db", "init"]).exit_code == 0
    book = bare / "book.csv"
    with book.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, BACK_BOOK_COLUMNS, extrasaction="ignore")
        w.writeheader()
        w.writerows(back_book(2000, datetime(2026, 3, 2, tzinfo=UTC)))
    args = ["model", "train", "credit", "--csv", str(book), "--target", "bad", "--time-column", "funded_at"]
    result = runner.invoke(app, [*args, "--id-column", "loan_id", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["version"] == 1


def test_status_shows_views_workers_timers_and_held_messages(bare: Path) -> None:
    for args in (["db", "init"], ["journeys", "publish"]):
        assert runner.invoke(app, args).exit_code == 0
    leads = bare / "leads.csv"
    leads.write_text(
        "source_channel,external_id,name,phone,email,language,birth_year,employment_type,consent_email,consent_sms\n"
        "web_form,W1,Alex Chen,13800138001,alex@example.com,en,1996,salaried,yes,yes\n",
        encoding="utf-8",
    )
    assert runner.invoke(app, ["leads", "import", str(leads)]).exit_code == 0
    behind = json.loads(runner.invoke(app, ["status", "--json"]).stdout)
    assert any(v["behind"] > 0 for v in behind["views"])  # reports read; only a worker or run writes
    assert runner.invoke(app, ["run"]).exit_code == 0
    doc = json.loads(runner.invoke(app, ["status", "--json"]).stdout)
    assert doc["schema"] == "huoke.status/1" and doc["store"] == "sqlite"
    assert all(v["behind"] == 0 for v in doc["views"])
    assert doc["pending_timers"] >= 1  # the young professional waits for the next step
    table = runner.invoke(app, ["status"]).stdout
    assert "Views" in table and "follow-up timer(s) pending" in table
