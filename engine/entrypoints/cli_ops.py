"""Operating huoke: set-up, the worker and one-off runs, the projection runner, status."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer

from engine.adapters.clock import VirtualClock
from engine.bootstrap import VIEWS, init_database, meta_for, vault_for
from engine.bootstrap.processes import Lease, status_document
from engine.bootstrap.services import run_projections, run_worker
from engine.entrypoints.cli_common import (
    JsonOpt,
    app,
    console,
    emit_json,
    engine_for,
    fail,
    projections_app,
    require_secrets,
    say,
    settings,
    show,
)
from engine.entrypoints.report_docs import (
    FilterError,
    check_day,
)
from engine.presentation import operations
from engine.settings import Settings

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
    s = settings()
    require_secrets(s, "worker")
    engine = engine_for(s)
    try:
        run_worker(s, engine, every, say)
    finally:
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
    s = settings()
    if s.postgres_env() is None:
        fail("projections run needs HUOKE_DATABASE_URL=postgresql://… (on SQLite the worker keeps the views)")
    run_projections(s, say)
