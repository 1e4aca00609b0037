"""huoke as it runs in production, as separate processes: `db init` (three at once), `serve`, two
workers sharing the work, `projections run`, imports while they run (a file, and on PostgreSQL
leads posted to the HTTP API with an integrator's key), opt-outs by the one-click
link, and a worker killed with SIGKILL. Against a real SMTP server on loopback and PostgreSQL (and
the single-worker SQLite topology). Time runs 3,600× faster (HUOKE_CLOCK_SPEED), so a follow-up
eight hours after the welcome e-mail fires eight seconds later.

Asserted: no lead that opted out gets the follow-up; no Message-ID arrives twice; every other
lead gets the welcome and the follow-up exactly once; no conflict error in any worker's log; the
views the runner kept equal a rebuild from the logs.
"""

from __future__ import annotations

import collections
import contextlib
import csv
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
import pytest

from engine.application.delivery.links import LinkKeys, make_token
from engine.domain.leads.identity import lead_id_for
from projections.delivery_schedule import DeliverySchedule
from projections.funnel import FunnelCounts
from projections.journey_index import JourneyIndex
from projections.screening import Screening
from tests.conftest import POSTGRES_URL, ROOT
from tests.e2e.smtp_server import Sink, free_port
from tests.e2e.test_crash_restart import command
from tests.helpers import ALL_CONFIG, SERVICE_SECRETS, TEST_LINK_KEY, journeys_folder, welcome_then_follow_up


def write_leads(path: Path, start: int, n: int) -> list[str]:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["source_channel", "external_id", "name", "phone", "email", "language", "birth_year",
                    "employment_type", "loan_type", "consent_email", "consent_sms"])  # fmt: skip
        for i in range(start, start + n):
            w.writerow(["web_form", f"L{i}", f"Lead {i}", f"+86138{i:08d}", f"live{i}@example.com", "en", 1995,
                        "salaried", "consumer", "yes", "yes"])  # fmt: skip
    return [f"live{i}@example.com" for i in range(start, start + n)]


def environment(tmp: Path, port: int, api: str, database_url: str) -> dict[str, str]:
    journeys = journeys_folder(tmp, config=ALL_CONFIG, live_check=welcome_then_follow_up("live-check"))
    return {
        **os.environ,
        "HUOKE_DATA_DIR": str(tmp / "data"),
        "HUOKE_OUTBOX_DIR": str(tmp / "outbox"),
        "HUOKE_JOURNEYS_DIR": str(journeys),
        "HUOKE_TEMPLATES_DIR": str(ROOT / "templates"),
        "HUOKE_DATABASE_URL": database_url,
        "HUOKE_EMAIL_TRANSPORT": "smtp",
        "HUOKE_SMTP_HOST": "127.0.0.1",
        "HUOKE_SMTP_PORT": str(port),
        "HUOKE_SMTP_RECONCILE_URL": api,
        **SERVICE_SECRETS,
        "HUOKE_CLOCK_SPEED": "3600",
        "HUOKE_CLOCK_ORIGIN": datetime.now(UTC).isoformat(),
        "HUOKE_PARTITIONS": "4",
    }


class Topology:
    """The processes of one live run, their logs, and clean-up."""

    def __init__(self, tmp: Path, env: dict[str, str]) -> None:
        self.tmp, self.env = tmp, env
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: dict[str, Any] = {}

    def run(self, *args: str) -> str:
        done = subprocess.run(command(*args), env=self.env, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, f"huoke {' '.join(args)}: {done.stderr}"
        return done.stdout

    def start(self, name: str, *args: str, **extra: str) -> None:
        log = self.logs[name] = (self.tmp / f"{name}.log").open("wb")
        self.procs[name] = subprocess.Popen(command(*args), env={**self.env, **extra}, stdout=log, stderr=log)

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(encoding="utf-8", errors="replace")

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(sig)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self.logs.pop(name).close()

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)


def pg_connections(pid: int) -> int:
    """How many TCP connections to PostgreSQL's port the process ``pid`` holds now (its socket
    inodes matched against the kernel's TCP tables)."""
    try:
        sockets = {
            os.readlink(f"/proc/{pid}/fd/{fd}")[8:-1]
            for fd in os.listdir(f"/proc/{pid}/fd")
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:[")
        }
    except (FileNotFoundError, ProcessLookupError):
        return 0  # it has just exited
    held = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table, encoding="ascii") as f:
            for line in list(f)[1:]:
                fields = line.split()
                if fields[2].endswith(":1538") and fields[3] == "01" and fields[9] in sockets:  # 5432, ESTABLISHED
                    held += 1
    return held


class ConnectionWatch:
    """The most PostgreSQL connections each running process of a topology held, sampled every
    quarter second in a thread until stopped."""

    def __init__(self, topology: Topology) -> None:
        self.topology, self.most = topology, collections.Counter[str]()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.25):
            for name, proc in list(self.topology.procs.items()):
                self.most[name] = max(self.most[name], pg_connections(proc.pid))

    def stop(self) -> dict[str, int]:
        self._stop.set()
        self._thread.join()
        return dict(self.most)


def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def opt_out(base: str, emails: list[str]) -> None:
    for email in emails:
        number = int(email.removeprefix("live").split("@")[0])
        lead = lead_id_for(f"source:web_form:L{number}")
        token = make_token(LinkKeys(TEST_LINK_KEY), "unsubscribe", lead, "email", datetime.now(UTC))
        request = urllib.request.Request(f"{base}/unsubscribe/{lead}/email/{token}", method="POST", data=b"")  # noqa: S310
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - loopback
            assert answer.status == 200


def view_rows(database_url: str, schema: str) -> dict[str, list[tuple[Any, ...]]]:
    tables = [t for view in (FunnelCounts, JourneyIndex, DeliverySchedule, Screening) for t in view.tables]
    out = {}
    with psycopg.connect(database_url.split("?", maxsplit=1)[0], autocommit=True) as conn:
        for table in tables:
            found = conn.execute(
                "SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND table_name = %s", (schema, table)
            ).fetchone()
            if found:
                out[table] = sorted(conn.execute(f'SELECT * FROM "{schema}"."{table}"').fetchall(), key=repr)  # noqa: S608
    return out


def post_leads(topology: Topology, base: str, path: Path) -> None:
    """Send a lead file's rows through the HTTP API (``huoke serve``) with an integrator's key."""
    import json

    key = json.loads(topology.run("api-keys", "create", "--role", "integrator", "--name", "web-forms", "--json"))["key"]
    with path.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    request = urllib.request.Request(  # noqa: S310 - loopback
        f"{base}/api/v1/leads",
        data=json.dumps(rows).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=60) as answer:  # noqa: S310 - loopback
        doc = json.loads(answer.read())
    assert (doc["created"], doc["refused"]) == (len(rows), 0), doc
    audit = json.loads(topology.run("audit", "list", "--json"))["entries"]
    assert [(e["key"], e["action"], e["status"]) for e in audit] == [("web-forms", "create_leads", 200)]


def live_run(
    topology: Topology, sink: Sink, workers: list[str], kill: str | None, base: str, via_api: bool = False
) -> None:
    """Import, opt out a fifth of the leads after their welcome, import more (a file, or through
    the HTTP API), maybe kill a worker."""
    first = write_leads(topology.tmp / "first.csv", 0, 60)
    topology.run("leads", "import", str(topology.tmp / "first.csv"), "--json")
    wait_for(lambda: all(sink.by_recipient()[e] >= 1 for e in first), 60, "the first welcome e-mails")
    # The twelve whose welcome arrived last: their follow-ups fall due 8 virtual hours (8 s) later,
    # well after these opt-outs are committed, however slowly the welcomes trickled in.
    welcomed = set(first)
    arrived = list(dict.fromkeys(to for to in sink.recipients() if to in welcomed))  # by first arrival
    opted = arrived[-12:]
    opt_out(base, opted)
    clicking = threading.Thread(target=click_welcomes, args=(sink, arrived[:20]))
    clicking.start()  # people click their welcome's link while the workers send and serve records
    if kill:
        topology.stop(kill, signal.SIGKILL)
    second = write_leads(topology.tmp / "second.csv", 60, 60)
    if via_api:
        post_leads(topology, base, topology.tmp / "second.csv")
    else:
        topology.run("leads", "import", str(topology.tmp / "second.csv"), "--json")
    expected = {e: 2 for e in first + second if e not in opted} | dict.fromkeys(opted, 1)
    wait_for(lambda: all(sink.by_recipient()[e] >= n for e, n in expected.items()), 120, "every follow-up")
    clicking.join(60)
    # Twenty people clicked (each five times, a gateway once before them): twenty messages
    # clicked by people, twenty by scanners, once each, in the views the reports read.
    wait_for(lambda: _clicks(topology) == (20, 20), 60, "the clicks in the engagement report")
    time.sleep(3)  # anything wrongly due would go out now
    got = sink.by_recipient()
    assert {e: got[e] for e in expected} == expected  # opted-out leads never got their follow-up
    ids = sink.message_ids()
    assert len(ids) == len(set(ids)) == sum(expected.values())  # not one Message-ID twice
    for name in workers:
        log = topology.log(name)
        assert "IntegrityError" not in log and "tick failed" not in log and "Traceback" not in log, log[-3000:]


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.pg_heavy
def test_two_workers_serve_and_a_runner_on_postgresql(
    tmp_path: Path, mail_server: tuple[Sink, int, str], pg_schema: str
) -> None:
    handler, port, api = mail_server
    url = f"{POSTGRES_URL}?schema={pg_schema}"
    topology = Topology(tmp_path, environment(tmp_path, port, api, url))
    try:
        inits = [
            subprocess.Popen(command("db", "init"), env=topology.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for _ in range(3)
        ]
        outputs = [p.communicate(timeout=120) for p in inits]  # three at once: set-up never collides
        assert [p.returncode for p in inits] == [0, 0, 0], "\n".join(err.decode()[-3000:] for _, err in outputs)
        topology.run("journeys", "publish")
        http = free_port()
        topology.env["HUOKE_PUBLIC_URL"] = f"http://127.0.0.1:{http}"  # tracked links land on serve
        topology.start("serve", "serve", "--port", str(http))
        for name in ("worker1", "worker2"):
            topology.start(name, "worker", "--every", "0.5", HUOKE_WORKER_ADVANCES_VIEWS="false")
        topology.start("projections", "projections", "run")
        watch = ConnectionWatch(topology)
        base = f"http://127.0.0.1:{http}"
        wait_for(partial(_healthy, base), 30, "huoke serve")
        wait_for(lambda: _shares(topology) == [2, 2], 30, "two workers sharing the four partitions")
        live_run(topology, handler, ["worker1", "worker2"], kill="worker1", base=base, via_api=True)
        wait_for(lambda: _shares(topology) == [4], 40, "the surviving worker taking over every partition")
        status = topology.run("status", "--json")
        assert '"partitions": 4' in status
        most = watch.stop()
        print("most PostgreSQL connections held:", most)
        # Each process's stores share one pool of at most HUOKE_PG_CONNECTIONS (20); outside it
        # only the coordination connection that holds the process's leases.
        assert len(most) == 4 and max(most.values()) <= 20 + 1, most
        topology.stop_all()
        before = view_rows(url, pg_schema)
        topology.run("projections", "rebuild")
        assert view_rows(url, pg_schema) == before  # the runner's views equal a rebuild
    finally:
        topology.stop_all()


@pytest.mark.slow
def test_one_worker_and_serve_on_sqlite_and_a_second_worker_is_refused(
    tmp_path: Path, mail_server: tuple[Sink, int, str]
) -> None:
    handler, port, api = mail_server
    topology = Topology(tmp_path, environment(tmp_path, port, api, ""))
    try:
        topology.run("db", "init")
        topology.run("journeys", "publish")
        http = free_port()
        topology.env["HUOKE_PUBLIC_URL"] = f"http://127.0.0.1:{http}"  # tracked links land on serve
        topology.start("serve", "serve", "--port", str(http))
        topology.start("worker", "worker", "--every", "0.5")
        base = f"http://127.0.0.1:{http}"
        wait_for(partial(_healthy, base), 30, "huoke serve")
        wait_for((tmp_path / "data" / "worker.lock").exists, 30, "the worker's lock")
        time.sleep(1)
        second = subprocess.run(
            command("worker"), env=topology.env, capture_output=True, text=True, timeout=60, check=False
        )
        assert second.returncode == 1 and "SQLite allows one worker at a time" in second.stderr
        live_run(topology, handler, ["worker"], kill=None, base=base)
        # A lead asked for by phone: the request line in serve's log names a keyed hash instead.
        with contextlib.suppress(urllib.error.HTTPError):
            urllib.request.urlopen(f"{base}/api/v1/leads/+8613800000007", timeout=10)  # noqa: S310 - loopback
        served = topology.log("serve")
        assert "POST /unsubscribe/… HTTP/1.1" in served and "GET /api/v1/leads/ref#" in served
        assert "@example.com" not in served and "+86138" not in served and "/email/" not in served
    finally:
        topology.stop_all()


BROWSER = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148 Safari/604.1"


def click_welcomes(sink: Sink, recipients: list[str]) -> None:
    """A mail gateway, then each person five times, follows the first tracked link of the welcome."""
    for to in recipients:
        link = sink.links[to][0]
        for agent in ["Mozilla/5.0 (compatible; Barracuda Sentinel (EE))", *[BROWSER] * 5]:
            request = urllib.request.Request(link, headers={"User-Agent": agent})  # noqa: S310 - loopback
            opener = urllib.request.build_opener(NoRedirect)
            with pytest.raises(urllib.error.HTTPError) as answer:  # urllib reports an unfollowed 302 so
                opener.open(request, timeout=30)
            answer.value.close()
            assert answer.value.code == 302 and answer.value.headers["Location"].startswith("https://lender.example/")


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any) -> None:
        return None


def _clicks(topology: Topology) -> tuple[int, int]:
    import json

    doc = json.loads(topology.run("report", "engagement", "--json"))
    return doc["clicked"], doc["scanner_clicked"]


def _healthy(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/health", timeout=2) as answer:  # noqa: S310 - loopback
            return bool(answer.status == 200)
    except OSError:
        return False


def _shares(topology: Topology) -> list[int]:
    import json

    workers = json.loads(topology.run("status", "--json"))["workers"]
    fresh = [w for w in workers if w["alive"] and w["partitions"]]
    return sorted(len(w["partitions"].split(",")) for w in fresh)
