"""The live topology rides out a database and a broker restart: ``huoke serve``, two workers,
``projections run``, ``webhooks run`` and ``bus run`` as separate processes on a PostgreSQL server
and a NATS server of the test's own (initdb in a temporary folder, its own ports), which the test
stops in the middle of the run and starts again.

Asserted: while the server is down the API answers 503 with Retry-After (at once, not after the
connection pool's 20 s of retries) and ``huoke status`` says plainly that the store does not
answer; after it is back every process is still running, every welcome and every follow-up goes
exactly once (no Message-ID twice), both workers are alive again and share the partitions, no
log holds a traceback, ``huoke status`` says every view is current, the views the runner kept
equal a rebuild, and every event of the logs is on the relay's stream exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import nats
import psycopg
import pytest

from tests.e2e.smtp_server import Sink, free_port
from tests.e2e.test_crash_restart import command
from tests.integration.test_live_topology import (
    Topology,
    _healthy,
    _shares,
    environment,
    view_rows,
    wait_for,
    write_leads,
)

PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"))), Path("/nonexistent"))


@dataclass
class Server:
    """A PostgreSQL server of one test's own, stopped and started at will."""

    data: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def ctl(self, *args: str) -> None:
        run_as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-w", "-t", "60", *args)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60"
        self.ctl("-o", options, "-l", str(self.data / "server.log"), "start")

    def stop(self) -> None:
        self.ctl("-m", "fast", "stop")


def run_as_postgres(*args: str) -> None:
    """PostgreSQL refuses to run as root: as root, run it as the postgres user."""
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run([*prefix, *args], check=True, capture_output=True, timeout=120)


@pytest.fixture
def own_postgres() -> Iterator[Server]:
    if not (PG_BIN / "initdb").exists():
        pytest.skip("PostgreSQL's server binaries are not installed")
    folder = Path(tempfile.mkdtemp(prefix="huoke-pg-"))  # not under pytest's 0700 root: postgres reads it
    data = folder / "data"
    data.mkdir()
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
        shutil.chown(data, "postgres")
    run_as_postgres(str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync")
    server = Server(data, free_port())
    server.start()
    try:
        yield server
    finally:
        subprocess.run(
            [*(["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []), str(PG_BIN / "pg_ctl"),
             "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True, timeout=60, check=False,
        )  # fmt: skip
        shutil.rmtree(folder, ignore_errors=True)


def answer(url: str, key: str) -> tuple[int, dict[str, str], float]:
    """Status, headers and seconds taken of a GET with an API key. The client gives up after
    30 s, as a browser or load balancer would: the pool's retries alone take about a minute."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})  # noqa: S310 - loopback
    began = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=30) as r:  # noqa: S310 - loopback
            return r.status, {k.lower(): v for k, v in r.headers.items()}, time.monotonic() - began
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, time.monotonic() - began


class Nats:
    """A NATS server with JetStream of one test's own, stopped and started at will."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = self.folder / "nats.log"
        args = ["-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.folder / "js"), "-l", str(log)]
        self.proc = subprocess.Popen([NATS_SERVER, *args])
        wait_for(lambda: _port_open(self.port), 30, "nats-server")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
            self.proc = None


NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


@pytest.fixture
def own_nats(tmp_path: Path) -> Iterator[Nats]:
    if not Path(NATS_SERVER).exists():
        pytest.skip("nats-server is not installed")
    server = Nats(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


async def _publish_leads(url: str, rows: list[dict[str, str]]) -> None:
    nc = await nats.connect(url, max_reconnect_attempts=-1, reconnect_time_wait=0.5)
    js = nc.jetstream()
    for row in rows:
        await js.publish("huoke.in.leads", json.dumps(row).encode(), headers={"Nats-Msg-Id": row["external_id"]})
    await nc.close()


async def _out_ids(url: str) -> list[str]:
    """The message id of every event on the relay's out stream."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    try:
        count = (await js.stream_info("huoke_out")).state.messages
        sub = await js.pull_subscribe("huoke.out.>", stream="huoke_out")
        ids: list[str] = []
        while len(ids) < count:
            for m in await sub.fetch(min(256, count - len(ids)), timeout=5):
                ids.append((m.headers or {}).get("Nats-Msg-Id", ""))
                await m.ack()
        return ids
    finally:
        await nc.close()


def _logged_events(topology: Topology) -> int:
    """Events in the logs the relay publishes (rows: PostgreSQL's ids can skip a number)."""
    with psycopg.connect(topology.env["HUOKE_DATABASE_URL"], autocommit=True) as conn:
        counts = [conn.execute(f"SELECT COUNT(*) FROM {t}_events").fetchone() for t in RELAYED]  # noqa: S608
    return sum(int(c[0]) for c in counts if c)


def _all_settled(topology: Topology) -> bool:
    views = json.loads(topology.run("status", "--json"))["views"]
    return all(v["behind"] == 0 for v in views) and any(v["head"] > 0 for v in views)


#: The logs ``bus run`` relays.
RELAYED = ("leads", "journeys", "deliveries")


@pytest.mark.slow
def test_every_process_rides_out_a_postgresql_and_a_nats_restart(
    tmp_path: Path, mail_server: tuple[Sink, int, str], own_postgres: Server, own_nats: Nats
) -> None:
    sink, port, api = mail_server
    topology = Topology(tmp_path, environment(tmp_path, port, api, own_postgres.url))
    topology.env["HUOKE_NATS_URL"] = own_nats.url
    try:
        topology.run("db", "init")
        topology.run("journeys", "publish")
        key = json.loads(topology.run("api-keys", "create", "--role", "admin", "--name", "ops", "--json"))["key"]
        http = free_port()
        base = f"http://127.0.0.1:{http}"
        topology.env["HUOKE_PUBLIC_URL"] = base
        topology.start("serve", "serve", "--port", str(http))
        for name in ("worker1", "worker2"):
            topology.start(name, "worker", "--every", "0.5", HUOKE_WORKER_ADVANCES_VIEWS="false")
        topology.start("projections", "projections", "run")
        topology.start("webhooks", "webhooks", "run", "--every", "0.5")
        topology.start("bus", "bus", "run")
        wait_for(partial(_healthy, base), 30, "huoke serve")
        wait_for(lambda: _shares(topology) == [2, 2], 30, "two workers sharing the four partitions")

        first = write_leads(tmp_path / "first.csv", 0, 40)
        topology.run("leads", "import", str(tmp_path / "first.csv"), "--json")
        wait_for(lambda: all(sink.by_recipient()[e] >= 1 for e in first), 60, "the first welcome e-mails")

        own_postgres.stop()  # the follow-ups fall due (8 virtual hours = 8 s) while it is down
        status, headers, _ = answer(f"{base}/api/v1/leads?limit=1", key)
        assert status == 503 and headers.get("retry-after") == "5", (status, headers)
        down = subprocess.run(
            command("status"), env=topology.env, capture_output=True, text=True, timeout=120, check=False
        )
        assert down.returncode == 1 and "Traceback" not in down.stderr, down.stderr
        assert "the store does not answer" in down.stderr and f"127.0.0.1:{own_postgres.port}" in down.stderr
        time.sleep(8)
        own_postgres.start()

        second = write_leads(tmp_path / "second.csv", 40, 40)
        wait_for(lambda: _posted(base, key, tmp_path / "second.csv"), 60, "serve taking leads again")
        expected = dict.fromkeys(first + second, 2)
        wait_for(lambda: all(sink.by_recipient()[e] >= 2 for e in expected), 120, "every follow-up")
        wait_for(lambda: _shares(topology) == [2, 2], 60, "both workers alive and sharing again")

        # NATS restarts while leads stream in through it: each captured once, welcomed once.
        third = [
            {"source_channel": "web_form", "external_id": f"L{i}", "name": f"Lead {i}", "phone": f"+86138{i:08d}",
             "email": f"live{i}@example.com", "language": "en", "consent_email": "yes"}
            for i in range(80, 120)
        ]  # fmt: skip
        asyncio.run(_publish_leads(own_nats.url, third[:20]))
        own_nats.stop()
        time.sleep(3)
        own_nats.start()
        asyncio.run(_publish_leads(own_nats.url, third[20:]))
        expected |= {row["email"]: 2 for row in third}
        wait_for(lambda: all(sink.by_recipient()[e] >= 2 for e in expected), 120, "the bus's leads' follow-ups")
        time.sleep(3)  # anything sent twice would arrive now
        assert {e: sink.by_recipient()[e] for e in expected} == expected
        ids = sink.message_ids()
        assert len(ids) == len(set(ids)) == sum(expected.values())  # not one Message-ID twice
        for name, proc in topology.procs.items():
            assert proc.poll() is None, f"{name} exited: {topology.log(name)[-2000:]}"
        for name in topology.procs:
            assert "Traceback" not in topology.log(name), topology.log(name)[-3000:]
        assert "store unreachable: projections" in topology.log("projections")
        total = _logged_events(topology)
        wait_for(lambda: len(asyncio.run(_out_ids(own_nats.url))) >= total, 60, "the relay catching up")
        out = asyncio.run(_out_ids(own_nats.url))
        assert len(out) == len(set(out)) == total  # every event relayed once, across both restarts
        # The runner's views settle at 0 behind: each counts only the events it follows (a runner
        # records the last event it applied, never the log's newest notification of other kinds).
        wait_for(lambda: _all_settled(topology), 60, "huoke status saying every view is current")
        topology.stop_all()
        schema = "public"
        before = view_rows(own_postgres.url, schema)
        topology.run("projections", "rebuild")
        assert view_rows(own_postgres.url, schema) == before  # the runner's views equal a rebuild
    finally:
        topology.stop_all()


def _posted(base: str, key: str, path: Path) -> bool:
    """Post a lead file's rows to the API; False on 503 (the client tries again, as told)."""
    with path.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    request = urllib.request.Request(  # noqa: S310 - loopback
        f"{base}/api/v1/leads",
        data=json.dumps(rows).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as r:  # noqa: S310 - loopback
            doc = json.loads(r.read())
    except urllib.error.HTTPError as e:
        if e.code == 503:
            return False
        raise
    assert doc["refused"] == 0, doc
    return True
