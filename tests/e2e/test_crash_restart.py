"""Kill the engine with SIGKILL at random moments; after restarts every message has gone out
exactly once — the same send ids, each once, as an uninterrupted run."""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import ROOT

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
    }


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "engine.entrypoints.cli", *args]


def huoke(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run to completion; fail the test with huoke's own message if it fails."""
    done = subprocess.run(command(*args), env=env_for(folder), capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr
    return done


def sent_ids(folder: Path) -> list[str]:
    sms = [json.loads(line)["send_id"] for line in (folder / "outbox" / "sms.jsonl").read_text().splitlines()]
    mails = [p.stem for p in (folder / "outbox" / "email").glob("*.eml")]
    return sms + mails


def test_sigkill_at_random_points_loses_nothing_and_sends_nothing_twice(tmp_path: Path) -> None:
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

    rng = random.Random(11)
    kills = 0
    for _ in range(12):
        proc = subprocess.Popen(
            command("run", "--until", UNTIL), env=env_for(crashed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(rng.uniform(0.8, 2.5))
        if proc.poll() is not None:
            assert proc.returncode == 0
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
    assert kills >= 1
    huoke(crashed, "run", "--until", UNTIL)
    got = sent_ids(crashed)
    assert len(got) == len(set(got)), "a message was sent twice"
    assert sorted(got) == sorted(expected), "a message was lost"
