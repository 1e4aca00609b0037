"""`huoke demo` as a user runs it: it never deletes a folder it did not make, and it sends
e-mail where HUOKE_EMAIL_TRANSPORT says."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.entrypoints.cli import app
from tests.conftest import ROOT
from tests.e2e.smtp_server import Sink
from tests.helpers import cli_environment

pytestmark = pytest.mark.slow  # each demo trains a model on a 20,000-loan back book
runner = CliRunner()
SMALL = ["--leads", "150", "--days", "4", "--json"]


def test_demo_refuses_a_folder_it_did_not_make_and_remakes_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli_environment(tmp_path, monkeypatch)
    theirs = tmp_path / "reports"
    theirs.mkdir()
    (theirs / "q3.xlsx").write_text("precious")
    refused = runner.invoke(app, ["demo", "--dir", str(theirs), *SMALL])
    assert refused.exit_code == 1 and "not empty and was not made by huoke demo" in refused.stderr
    assert (theirs / "q3.xlsx").read_text() == "precious"
    mine = tmp_path / "demo"
    first = runner.invoke(app, ["demo", "--dir", str(mine), *SMALL])
    assert first.exit_code == 0, first.stderr
    doc = json.loads(first.stdout)
    assert doc["agent_tasks_done"] > 0  # the demo's loan officers work the tasks the desk routes them
    assert set(doc["referrals"]) == {
        "referrals",
        "funded",
        "reward_cost",
        "cost_per_funded",
        "by_status",
        "paid_cash",
        "held",
    }
    lines = (mine / "events.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == doc["lifecycle_events"] > 0  # the lender's file holds the facts that happened
    again = runner.invoke(app, ["demo", "--dir", str(mine), *SMALL])
    assert again.exit_code == 0 and json.loads(again.stdout)["funnel"] == json.loads(first.stdout)["funnel"]


@pytest.mark.smtp
def test_demo_sends_e_mail_over_smtp_when_told_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mail_server: tuple[Sink, int, str]
) -> None:
    sink, port, _ = mail_server
    cli_environment(tmp_path, monkeypatch)
    for key, value in {
        "HUOKE_EMAIL_TRANSPORT": "smtp",
        "HUOKE_SMTP_HOST": "127.0.0.1",
        "HUOKE_SMTP_PORT": str(port),
    }.items():
        monkeypatch.setenv(key, value)
    result = runner.invoke(app, ["demo", "--dir", str(tmp_path / "demo"), *SMALL])
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["outbox"]["emails"] == len(sink.ids) > 0
    assert not list((tmp_path / "demo" / "outbox").glob("email/*.eml"))


def test_the_demo_store_opens_again_from_its_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With no secrets of the user's own, the demo signs with keys it makes and writes them, with
    its folders, to a private huoke.env: loading it opens the store again (reports, huoke serve
    for the dashboard), which the services refuse without them."""
    cli_environment(tmp_path, monkeypatch)
    for key in ("HUOKE_UNSUBSCRIBE_SECRET", "HUOKE_SUPPRESSION_PEPPER"):
        monkeypatch.delenv(key)
    mine = tmp_path / "demo"
    made = runner.invoke(app, ["demo", "--dir", str(mine), *SMALL])
    assert made.exit_code == 0, made.stderr
    env_file = mine / "huoke.env"
    assert env_file.stat().st_mode & 0o777 == 0o600
    values = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if not line.startswith("#"))
    assert set(values) == {
        "HUOKE_DATA_DIR",
        "HUOKE_OUTBOX_DIR",
        "HUOKE_PUBLIC_URL",
        "HUOKE_CLOCK",
        "HUOKE_UNSUBSCRIBE_SECRET",
        "HUOKE_SUPPRESSION_PEPPER",
    }
    monkeypatch.setenv("HUOKE_DATA_DIR", values["HUOKE_DATA_DIR"])
    refused = runner.invoke(app, ["run"])
    assert refused.exit_code != 0 and "HUOKE_UNSUBSCRIBE_SECRET is not set" in refused.output
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    assert runner.invoke(app, ["run"]).exit_code == 0
    created = runner.invoke(app, ["api-keys", "create", "--role", "marketer", "--name", "me", "--json"])
    assert created.exit_code == 0 and json.loads(created.stdout)["key"].startswith("hk_")


def test_the_demo_piped_prints_progress_lines_and_hints_a_shell_can_run(tmp_path: Path) -> None:
    """`make demo | tee` (CI, a log): no bar is drawn, so plain progress lines; and the closing
    hints name the huoke the reader's shell finds (.venv/bin/huoke after `make demo`)."""
    huoke = ROOT / ".venv" / "bin" / "huoke"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUOKE_")}
    env["PATH"] = "/usr/bin:/bin"  # as a newcomer's shell: huoke not on the PATH
    done = subprocess.run(
        [str(huoke.relative_to(ROOT)), "demo", "--dir", str(tmp_path / "demo"), "--leads", "150", "--days", "4"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "simulated day 4 of 4" in done.stdout + done.stderr
    assert f"try: HUOKE_DATA_DIR={tmp_path / 'demo' / 'data'} .venv/bin/huoke leads show" in done.stdout
    assert ".venv/bin/huoke serve" in done.stdout
