"""SIGKILL while rewarding: `huoke run` deciding 150 referral rewards is killed whenever some
but not all are paid, then run again; every reward is paid exactly once and the programme's
budget counts each once (decisions are saved with the leads log position they came from)."""

from __future__ import annotations

import csv
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from engine.bootstrap import referral_key
from engine.domain.leads.identity import lead_id_for
from engine.domain.referrals.codes import referral_code
from engine.settings import Settings
from tests.e2e.test_crash_restart import command, env_for, huoke

N = 150
LEAD_COLUMNS = ["source_channel", "external_id", "name", "phone", "language", "birth_year", "employment_type",
                "loan_type", "consent_sms", "captured_at", "referral_code"]  # fmt: skip


def paid(folder: Path) -> tuple[int, int]:
    """(Referral.Paid events, referrals paid) in the referrals store, read beside the writer."""
    path = folder / "data" / "referrals.db"
    if not path.exists():
        return 0, 0
    with sqlite3.connect(path, timeout=30) as c:
        try:
            rows = c.execute(
                "SELECT COUNT(*), COUNT(DISTINCT originator_id) FROM stored_events WHERE topic LIKE '%:Referral.Paid'"
            ).fetchone()
        except sqlite3.OperationalError:
            return 0, 0
    return int(rows[0]), int(rows[1])


@pytest.mark.slow
def test_a_run_killed_while_rewarding_pays_each_reward_once(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    huoke(tmp_path, "db", "init")
    huoke(tmp_path, "journeys", "publish")
    settings = Settings(**{k.removeprefix("HUOKE_").lower(): v for k, v in env.items() if k.startswith("HUOKE_")})  # type: ignore[arg-type]
    key = referral_key(settings)
    with (tmp_path / "leads.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(LEAD_COLUMNS)
        for i in range(N):
            w.writerow(["web_form", f"C{i}", f"Customer {i}", f"+86137{i:08d}", "en", 1985, "salaried", "consumer",
                        "yes", "2026-03-02T09:00:00+08:00", ""])  # fmt: skip
        for i in range(N):
            code = referral_code(key, lead_id_for(f"source:web_form:C{i}"))
            w.writerow(["referral", f"F{i}", f"Friend {i}", f"+86136{i:08d}", "en", 1990, "salaried", "consumer",
                        "yes", "2026-03-03T09:00:00+08:00", code])  # fmt: skip
    with (tmp_path / "events.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["type", "phone", "application_id", "loan_type", "amount", "at"])
        for who, prefix, day in (("C", "+86137", 2), ("F", "+86136", 5)):
            for i in range(N):
                for kind in ("application_submitted", "application_approved", "loan_funded"):
                    w.writerow([kind, f"{prefix}{i:08d}", f"{who}-{i}", "consumer", "50000",
                                f"2026-03-0{day}T10:00:00+08:00"])  # fmt: skip
    huoke(tmp_path, "leads", "import", str(tmp_path / "leads.csv"))
    huoke(tmp_path, "events", "import", str(tmp_path / "events.csv"))
    kills = 0
    for _ in range(3):
        proc = subprocess.Popen(command("run", "--until", "2026-03-07"), env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            if 0 < paid(tmp_path)[0] < N:
                proc.send_signal(signal.SIGKILL)
                kills += 1
                break
            time.sleep(0.01)
        proc.wait()
        if paid(tmp_path)[0] >= N:
            break
    huoke(tmp_path, "run", "--until", "2026-03-08")
    assert paid(tmp_path) == (N, N)  # every reward paid, none twice
    assert kills >= 1  # at least one kill landed between the first and the last reward
    huoke(tmp_path, "referrals", "payouts", "--out", str(tmp_path / "payouts.csv"))
    with (tmp_path / "payouts.csv").open(encoding="utf-8") as f:
        lines = list(csv.DictReader(f))
    assert len(lines) == 2 * N and len({(line["referral_id"], line["side"]) for line in lines}) == 2 * N
