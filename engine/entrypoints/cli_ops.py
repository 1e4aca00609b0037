"""Operating huoke: set-up, the worker and one-off runs, the projection runner, status."""

from __future__ import annotations

import contextlib
import signal
import time
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.text import Text

from engine.adapters.clock import VirtualClock
from engine.application.engine import VIEW_NAMES
from engine.bootstrap import VIEWS, init_database, meta_for, store_env, vault_for
from engine.bootstrap.processes import Lease, status_document
from engine.entrypoints.cli_common import (
    JsonOpt,
    app,
    console,
    emit_json,
    engine_for,
    err,
    fail,
    projections_app,
    require_secrets,
    settings,
    show,
    store_trouble,
)
from engine.entrypoints.report_docs import (
    FilterError,
    check_day,
)
from engine.eventstore.leases import PostgresLeases
from engine.eventstore.recorders import refresh_pools
from engine.eventstore.saving import store_unreachable
from engine.presentation import operations
from engine.settings import Settings

#: Seconds a worker's tick may start new work; then it looks at its share again (a new worker
#: gets partitions within about this long).
TICK_BUDGET = 2.0

db_app = typer.Typer(help="Set up the database.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("init")
def db_init(as_json: JsonOpt = False) -> None:
    """Create every table and index (idempotent; safe when several processes run it at once)."""
    s = settings()
    count = init_database(s)
    _seal_webhook_secrets(s)
    where = "PostgreSQL" if s.database_url else f"SQLite files in {s.data_dir}"
    key = _master_key_source(s)
    if as_json:
        emit_json({"schema": "huoke.db.init/1", "store": where, "partitions": count, "master_key": key})
        return
    console.print(f"database ready ({where}); {count} lead partition(s)")
    if key:
        console.print(f"master key: {key} (keep it out of the data backups: it opens every lead's data)")


def _seal_webhook_secrets(s: Settings) -> None:
    """Stores from before: the webhooks' signing secrets are sealed under the master key."""
    from engine.application.webhooks import Webhooks
    from engine.bootstrap import meta_for

    vault = vault_for(s)
    if vault is not None:
        try:
            Webhooks(None, meta_for(s), vault=vault).seal_stored_secrets()
        finally:
            vault.close()


def _master_key_source(s: Settings) -> str | None:
    """Where the master key comes from (never the key itself); None without encryption."""
    if not s.encrypt_pii:
        return None
    return "HUOKE_MASTER_KEY" if s.master_key.get_secret_value() else str(s.master_key_path.resolve())


def _parse_until(text: str, tz: ZoneInfo) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
        check_day(moment, "--until")
    except FilterError as e:
        fail(str(e), 2)
    except ValueError:
        fail(f"--until {text!r} is not a date/time like 2026-03-01 or 2026-03-01T09:00", 2)
    return moment if moment.tzinfo else moment.replace(tzinfo=tz)


@app.command("run")
def run(
    until: Annotated[str | None, typer.Option(help="simulate up to this date/time on a virtual clock")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Process everything pending up to now (or --until, on a virtual clock): enrol, wait, send.
    On PostgreSQL it works on the partitions no running worker owns."""
    s = settings()
    require_secrets(s, "run")
    clock: Any = None
    if until:
        moment = _parse_until(until, ZoneInfo(s.timezone))
        clock = VirtualClock(min(datetime.now(UTC), moment))
    engine = engine_for(s, clock)
    lease = Lease(s, engine, one_off=True)
    try:
        if until:
            engine.refresh_views()
            pending, reached = engine.earliest_pending(), meta_for(s).reached()
            start = max((t for t in (pending, reached) if t is not None), default=None)
            if start is not None:  # where the work starts, never before where it already stands
                clock.rewind_to(start)
            report = engine.run(until=moment)
            meta_for(s).reach(moment)
        else:
            report = engine.run()
        doc = report.as_dict()
    finally:
        lease.close()
        engine.close()
    if as_json:
        emit_json({"schema": "huoke.run/1", **doc, "partitions": engine.parts.describe()})
        return
    console.print(" · ".join(f"{k.replace('_', ' ')} {v}" for k, v in doc.items()))


@app.command("worker")
def worker(
    every: Annotated[float, typer.Option(help="seconds between runs")] = 30.0,
) -> None:
    """Service mode: run everything due every few seconds (one APScheduler interval job). On
    PostgreSQL several workers share the lead partitions; on SQLite one worker runs at a time."""
    from apscheduler.schedulers.blocking import BlockingScheduler

    s = settings()
    require_secrets(s, "worker")
    engine = engine_for(s)
    lease = Lease(s, engine, one_off=False)
    started = datetime.now(UTC)
    scheduler = BlockingScheduler(job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600})
    failures = 0

    def tick() -> None:
        """One pass, then the next one ``every`` seconds after this one ends (a long pass never
        has a second one waiting behind it). While the store does not answer, nothing is sent
        (every message's marker must be recorded before it leaves) and the passes back off."""
        nonlocal failures
        pause = every
        try:
            lease.rebalance()
            report = engine.run(budget=TICK_BUDGET)
            lease.heartbeat(report, started)
            failures = 0
            if any(report.as_dict().values()):
                err.print(
                    f"partitions {engine.parts.describe()}: "
                    + " · ".join(f"{k} {v}" for k, v in report.as_dict().items() if v),
                    soft_wrap=True,
                )
        except Exception as e:  # a failed tick is logged and retried
            if store_unreachable(e):
                failures += 1
                pause = max(every, store_trouble("worker", e, failures))
                with contextlib.suppress(Exception):
                    refresh_pools()  # the connections that died with the old sessions
            else:
                err.print(Text.assemble(("tick failed:", "red"), f" {type(e).__name__}: {e}"), soft_wrap=True)
        finally:
            if scheduler.running:
                scheduler.add_job(tick, "date", run_date=datetime.now(UTC) + timedelta(seconds=pause))

    def stop(*_: Any) -> None:
        scheduler.shutdown(wait=True)  # the tick under way finishes first

    signal.signal(signal.SIGTERM, stop)
    scheduler.add_job(tick, "date", run_date=datetime.now(UTC))
    err.print(f"huoke worker: running every {every:g}s (Ctrl-C stops)")
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        lease.close()
        engine.close()


@app.command("status")
def status(as_json: JsonOpt = False) -> None:
    """What is running and how far behind it is: each view's lag behind its logs, each worker's
    last tick and share, pending follow-up timers and held messages."""
    s = settings()
    engine = engine_for(s)
    try:
        doc = status_document(s, engine)
    finally:
        engine.close()
    show(doc, as_json, operations.status)


@projections_app.command("rebuild")
def projections_rebuild(
    name: Annotated[str | None, typer.Argument(help=f"one of {', '.join(VIEWS)} (default: all)")] = None,
) -> None:
    """Rebuild read models from the event log (nothing is sent: sends are never projections)."""
    names = [name] if name else list(VIEWS)
    for n in names:
        if n not in VIEWS:
            fail(f"unknown projection {n!r} ({', '.join(VIEWS)})")
    s = settings()
    engine = engine_for(s)
    lease = Lease(s, engine, one_off=True)  # SQLite: refuses while a worker runs
    try:
        if lease.pg is not None and not lease.pg.hold_views(wait=False):
            fail("another process keeps the views current (a worker or `projections run`): stop it first")
        started = time.perf_counter()
        engine.rebuild_views([VIEWS[n] for n in names])
    finally:
        lease.close()
        engine.close()
    console.print(f"rebuilt {', '.join(names)} in {time.perf_counter() - started:.1f}s")


@projections_app.command("run")
def projections_run() -> None:
    """Distributed mode (PostgreSQL): keep every view current from the logs, until stopped. The
    one writer of the views: it waits while another process holds that role. When the database
    goes away (a restart, a failover) it says so, waits with back-off and carries on from each
    view's tracking once it answers again; any other error stops the process with its message."""
    import threading

    s = settings()
    if s.postgres_env() is None:
        fail("projections run needs HUOKE_DATABASE_URL=postgresql://… (on SQLite the worker keeps the views)")
    meta = meta_for(s)
    leases = PostgresLeases(meta, meta.partitions(), True, VIEW_NAMES)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    failures, broken = 0, False
    try:
        while not stopping.is_set():
            try:
                if broken:
                    leases.reconnect()
                    refresh_pools()
                    broken, failures = False, 0
                    err.print("projections: the store answers again; following the logs from each view's tracking")
                _follow_views(s, leases, stopping)
                failures = 0
            except Exception as e:
                if not store_unreachable(e):
                    fail(f"a projection runner stopped: {type(e).__name__}: {e}")
                broken, failures = True, failures + 1
                stopping.wait(store_trouble("projections", e, failures))
    except KeyboardInterrupt:
        pass
    finally:
        leases.close()


def _follow_views(s: Settings, leases: PostgresLeases, stopping: Any) -> None:
    """Hold the views' writer role, then run one runner per (view, log) until ``stopping`` is set
    or a runner fails (its error is raised)."""
    from projections.runners import start_runners

    if not leases.hold_views(wait=False):
        err.print(
            "another process keeps the views current; waiting until it stops (workers: set "
            "HUOKE_WORKER_ADVANCES_VIEWS=false when a projection runner runs)"
        )
        leases.hold_views(wait=True)
    runners = start_runners(store_env(s, "projections"), s.timezone)
    logs = "Leads, Journeys, Deliveries and Referrals"
    err.print(f"huoke projections: {len(runners)} runners following {logs} (Ctrl-C stops)")
    try:
        while not stopping.is_set():
            for runner in runners:
                runner.run_forever(timeout=0.2)
    finally:
        for runner in runners:
            with contextlib.suppress(Exception):
                runner.stop()
