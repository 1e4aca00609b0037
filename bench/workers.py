"""Workers sharing the work on PostgreSQL: the same send-and-follow-up workload with one
`huoke worker` process and with two, as separate processes against an SMTP sink on loopback.

Each lead gets a welcome e-mail and, ten (accelerated) minutes later, a follow-up. The rate is
e-mails delivered per wall-clock second from the import's end to the last follow-up; the two
runs are measured minutes apart in the same bench, and the ratio is the figure to compare.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from aiosmtpd.controller import Controller

ROOT = Path(__file__).resolve().parent.parent
SQL_COUNT = Path(__file__).resolve().parent / "sql_count"
POSTGRES_URL = os.environ.get("HUOKE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
JOURNEY = """
id: bench-follow-up
name: Bench — welcome, then a follow-up ten minutes later
locales: [zh-CN, en]
entry: {on: lead_captured}
vars: {apply_url: "https://lender.example/apply", hotline: 400-800-8888}
start: welcome
steps:
  - id: welcome
    send: {channel: email, template: yp_quick_apply}
    next: wait_10m
  - id: wait_10m
    wait: 10m
    next: follow_up
  - id: follow_up
    send: {channel: email, template: yp_finish_application}
"""


class Counter:
    """An SMTP sink that counts messages and Message-IDs, and when the first and last came."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.first = self.last = 0.0
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        for line in envelope.content.split(b"\r\n"):
            if line.lower().startswith(b"message-id:"):
                with self.lock:
                    self.ids.append(line.split(b":", 1)[1].strip().decode())
                    self.last = time.perf_counter()
                    self.first = self.first or self.last
                break
        return "250 OK"


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "engine.entrypoints.cli", *args]


def _leads(path: Path, n: int) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["source_channel", "external_id", "name", "phone", "email", "language", "consent_email"])
        for i in range(n):
            w.writerow(["web_form", f"B{i}", f"Lead {i}", f"+86139{i:08d}", f"bench{i}@example.com", "en", "yes"])


def _env(folder: Path, schema: str, port: int) -> dict[str, str]:
    """The workers' settings: their own schema and journey, e-mail to the sink on ``port``."""
    journeys = folder / "journeys"
    shutil.copytree(ROOT / "journeys" / "config", journeys / "config")
    (journeys / "bench.yaml").write_text(JOURNEY, encoding="utf-8")
    return {
        **os.environ,
        "HUOKE_DATABASE_URL": f"{POSTGRES_URL}?schema={schema}",
        "HUOKE_DATA_DIR": str(folder / "data"),
        "HUOKE_JOURNEYS_DIR": str(journeys),
        "HUOKE_TEMPLATES_DIR": str(ROOT / "templates"),
        "HUOKE_EMAIL_TRANSPORT": "smtp",
        "HUOKE_SMTP_HOST": "127.0.0.1",
        "HUOKE_SMTP_PORT": str(port),
        # 10 virtual minutes pass in one real second; a follow-up is stale only 24 virtual
        # hours (144 s) late, so a slow tick never turns follow-ups into skips.
        "HUOKE_CLOCK_SPEED": "600",
        "HUOKE_CLOCK_ORIGIN": datetime.now(UTC).isoformat(),
        "HUOKE_PARTITIONS": "8",
        # Workers refuse weak secrets; these serve the benchmark only.
        "HUOKE_UNSUBSCRIBE_SECRET": "bench-link-key-0123456789abcdefghijklmnop",
        "HUOKE_SUPPRESSION_PEPPER": "bench-suppression-pepper-0123456789abcdef",
    }


def _start(log_path: Path, args: list[str], env: dict[str, str], procs: list[Any], logs: list[Any]) -> None:
    log = log_path.open("wb")
    logs.append(log)
    procs.append(subprocess.Popen(args, env=env, stdout=log, stderr=log))  # noqa: S603 - huoke itself


def one_run(workers: int, n: int, progress: Any, views_runner: bool = False) -> dict[str, float]:
    """Deliver 2·n e-mails with ``workers`` worker processes (and, with ``views_runner``, the
    views in a ``huoke projections run`` process of their own, as deployed distributed); return
    the rate and errors seen."""
    folder = Path(tempfile.mkdtemp(prefix="huoke-bench-workers-"))
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    sink = Counter()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    env = _env(folder, schema, port) | ({"HUOKE_WORKER_ADVANCES_VIEWS": "false"} if views_runner else {})
    procs: list[subprocess.Popen[bytes]] = []
    logs = []
    try:
        for args in (("db", "init"), ("journeys", "publish")):
            subprocess.run(_cli(*args), env=env, check=True, capture_output=True)  # noqa: S603 - huoke itself
        _leads(folder / "leads.csv", n)
        leads = _cli("leads", "import", str(folder / "leads.csv"), "--json")
        subprocess.run(leads, env=env, check=True, capture_output=True)  # noqa: S603 - huoke itself
        commits_before, writes_before = _server_counts()
        counted = folder / "sql"
        # The workers count their own statements (bench/sql_count: pg_stat_statements is not preloaded here).
        counting = {
            **env,
            "HUOKE_BENCH_SQL_COUNT": str(counted),
            "PYTHONPATH": os.pathsep.join(filter(None, (str(SQL_COUNT), env.get("PYTHONPATH")))),
        }
        started = time.perf_counter()
        cpu_before = _cpu(procs)
        if views_runner:
            _start(folder / "views.log", _cli("projections", "run"), env, procs, logs)
        for i in range(workers):
            _start(folder / f"worker{i}.log", _cli("worker", "--every", "0.5"), counting, procs, logs)
        _wait_for(sink, 2 * n, started, progress)
        elapsed = time.perf_counter() - started
        cpu = {k: (v - cpu_before.get(k, 0.0)) / elapsed for k, v in _cpu(procs, views_runner).items()}
        time.sleep(1.2)  # the server publishes its transaction counts within a second
        commits, writes = _server_counts()
        commits, writes = commits - commits_before, writes - writes_before - 1
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        for log in logs:
            log.close()
        controller.stop()
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    text = "".join((folder / f"worker{i}.log").read_text(errors="replace") for i in range(workers))
    statements = sum(json.loads(p.read_text())["statements"] for p in folder.glob("sql.*"))
    figures = _figures(sink, started, elapsed, text, {"commits": commits, "writes": writes, "statements": statements})
    return figures | {f"cores_{k}": v for k, v in cpu.items()}


def _wait_for(sink: Counter, total: int, started: float, progress: Any) -> None:
    """Until the sink has ``total`` e-mails (or ten minutes passed), telling ``progress``."""
    done = 0
    while done < total and time.perf_counter() - started < 600:
        time.sleep(0.5)
        with sink.lock:
            now = len(sink.ids)
        progress(now - done)
        done = now


def _figures(sink: Counter, started: float, elapsed: float, logs: str, counts: dict[str, int]) -> dict[str, float]:
    with sink.lock:
        delivered, unique = len(sink.ids), len(set(sink.ids))
        first, last = sink.first, sink.last
    per_email = {f"{k}_per_email": v / delivered if delivered else 0.0 for k, v in counts.items()}
    return {
        # From the first e-mail the sink received to the last: the sending rate, as the raw
        # aiosmtplib baseline's (its connection is open before its clock starts). The workers'
        # start (a Python process importing huoke, connecting, its first tick) is apart.
        "emails_per_s": (delivered - 1) / (last - first) if delivered > 1 and last > first else 0.0,
        "emails_per_s_from_start": delivered / elapsed,
        "first_email_s": first - started if first else 0.0,
        "delivered": delivered,
        "duplicates": delivered - unique,
        "conflicts": logs.count("IntegrityError") + logs.count("tick failed"),
        **per_email,
    }


def _ticks(pid: int | str) -> int:
    """CPU clock ticks a process has used (user + system), 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def _cpu(procs: list[Any], views_runner: bool = False) -> dict[str, float]:
    """CPU seconds used so far: the whole machine (busy, every core), the huoke processes by
    role, every PostgreSQL process, and this one (the SMTP sink's thread and the bench)."""
    tick = os.sysconf("SC_CLK_TCK")
    stat = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    postgres = sum(_ticks(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _comm(p) == "postgres")
    runner = procs[:1] if views_runner else []
    workers = procs[1:] if views_runner else procs
    return {
        "machine": (sum(stat) - stat[3] - stat[4]) / tick,
        "workers": sum(_ticks(p.pid) for p in workers) / tick,
        "views_runner": sum(_ticks(p.pid) for p in runner) / tick,
        "postgres": postgres / tick,
        "sink_and_bench": sum(os.times()[:2]),
    }


def _comm(proc: Path) -> str:
    try:
        return (proc / "comm").read_text().strip()
    except OSError:
        return ""


def _server_counts() -> tuple[int, int]:
    """(transactions committed in the bench's database so far, every process's, read-only ones
    included: what the server counts; the server's next transaction id: the difference over a
    run is how many transactions wrote anything, in every process — a read-only transaction
    takes no id, this call takes one)."""
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        commits = conn.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()").fetchone()
        xid = conn.execute("SELECT pg_current_xact_id()::text::bigint").fetchone()
    return (int(commits[0]) if commits else 0), (int(xid[0]) if xid else 0)
