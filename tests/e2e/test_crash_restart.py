"""Kill the engine with SIGKILL at random points of its sending; after restarts every message has
gone out exactly once — the same send ids, each once, as an uninterrupted run.

Kills are timed by progress (after a random number of further messages), not by the clock, so
the test kills mid-send the same number of times on a fast machine and on a slow one."""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.helpers import SERVICE_SECRETS

UNTIL = "2026-04-05T00:00:00+08:00"


def write_leads(path: Path, n: int) -> None:
    rng = random.Random(7)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "source_channel",
                "external_id",
                "name",
                "phone",
                "email",
                "language",
                "birth_year",
                "employment_type",
                "business_name",
                "loan_type",
                "consent_email",
                "consent_sms",
                "captured_at",
            ]
        )
        for i in range(n):
            kind = rng.choice(["young", "sme", "senior"])
            w.writerow(
                [
                    "web_form",
                    f"K{i}",
                    f"Lead {i}",
                    f"+8613{rng.randint(100_000_000, 999_999_999)}",
                    f"k{i}@example.com",
                    rng.choice(["en", "zh-CN"]),
                    {"young": 1995, "sme": 1980, "senior": 1955}[kind],
                    {"young": "salaried", "sme": "business_owner", "senior": "retired"}[kind],
                    "Acme Ltd" if kind == "sme" else "",
                    "consumer",
                    "yes",
                    "yes",
                    f"2026-03-0{2 + i % 5}T10:00:00+08:00",
                ]
            )


def env_for(folder: Path) -> dict[str, str]:
    return {
        **os.environ,
        "HUOKE_DATA_DIR": str(folder / "data"),
        "HUOKE_OUTBOX_DIR": str(folder / "outbox"),
        "HUOKE_JOURNEYS_DIR": str(ROOT / "journeys"),
        "HUOKE_TEMPLATES_DIR": str(ROOT / "templates"),
        "HUOKE_DATABASE_URL": "",
        "HUOKE_EMAIL_TRANSPORT": "outbox",
        **SERVICE_SECRETS,
    }


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "engine.entrypoints.cli", *args]


def huoke(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run to completion; fail the test with huoke's own message if it fails."""
    done = subprocess.run(command(*args), env=env_for(folder), capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr
    return done


def outbox_count(folder: Path) -> int:
    """Messages written to the outbox so far (complete SMS lines and e-mail files)."""
    sms = folder / "outbox" / "sms.jsonl"
    lines = sms.read_bytes().count(b"\n") if sms.exists() else 0
    return lines + sum(1 for _ in (folder / "outbox" / "email").glob("*.eml"))


def run_with_kills(env: dict[str, str], progress: Callable[[], int], seed: int, rounds: int = 8) -> int:
    """Start ``huoke run`` ``rounds`` times and SIGKILL each after it has sent a random 3 to 40
    more messages (by ``progress``); return how many runs were killed mid-send."""
    rng = random.Random(seed)
    kills = 0
    for _ in range(rounds):
        target = progress() + rng.randint(3, 40)
        with tempfile.TemporaryFile() as errors:
            proc = subprocess.Popen(command("run", "--until", UNTIL), env=env, stdout=subprocess.DEVNULL, stderr=errors)
            while proc.poll() is None and progress() < target:
                time.sleep(0.005)
            if proc.poll() is not None:
                errors.seek(0)
                assert proc.returncode == 0, errors.read().decode()
                break
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        kills += 1
    return kills


def sent_ids(folder: Path) -> list[str]:
    sms = [json.loads(line)["send_id"] for line in (folder / "outbox" / "sms.jsonl").read_text().splitlines()]
    mails = [p.stem for p in (folder / "outbox" / "email").glob("*.eml")]
    return sms + mails


@pytest.mark.slow
def test_sigkill_mid_send_loses_nothing_and_sends_nothing_twice(tmp_path: Path) -> None:
    leads = tmp_path / "leads.csv"
    write_leads(leads, 240)
    reference, crashed = tmp_path / "reference", tmp_path / "crashed"
    for folder in (reference, crashed):
        huoke(folder, "db", "init")
        huoke(folder, "journeys", "publish")
        huoke(folder, "leads", "import", str(leads), "--json")
    huoke(reference, "run", "--until", UNTIL)
    expected = sent_ids(reference)
    assert len(expected) == len(set(expected)) > 400

    # 8 kills of at most 40 messages each stay well within the run: every kill lands mid-send.
    assert run_with_kills(env_for(crashed), lambda: outbox_count(crashed), seed=11) == 8
    huoke(crashed, "run", "--until", UNTIL)
    got = sent_ids(crashed)
    assert len(got) == len(set(got)), "a message was sent twice"
    assert sorted(got) == sorted(expected), "a message was lost"
