"""Operating huoke: set-up, the worker and one-off runs, the projection runner, status."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated

import typer

from engine.adapters.clock import VirtualClock
from engine.application import report_catalog
from engine.application.report_catalog import FilterError
from engine.bootstrap import VIEWS
from engine.bootstrap.processes import Lease, status_document
from engine.bootstrap.services import run_once, run_projections, run_worker, set_up_store
from engine.entrypoints.cli_common import (
    JsonOpt,
    app,
    console,
    emit_json,
    engine_for,
    fail,
    opened,
    projections_app,
    require_secrets,
    say,
    settings,
    show,
)
from engine.presentation import operations

db_app = typer.Typer(help="Set up the database.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("init")
def db_init(as_json: JsonOpt = False) -> None:
    """Create every table and index (idempotent; safe when several processes run it at once)."""
    s = settings()
    doc = set_up_store(s)
    where, count, key = doc["store"], doc["partitions"], doc["master_key"]
    if as_json:
        emit_json(doc)
        return
    console.print(f"database ready ({where}); {count} lead partition(s)")
    if key:
        console.print(f"master key: {key} (keep it out of the data backups: it opens every lead's data)")


@app.command("run")
def run(
    until: Annotated[str | None, typer.Option(help="simulate up to this date/time on a virtual clock")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Process everything pending up to now (or --until, on a virtual clock): enrol, wait, send.
    On PostgreSQL it works on the partitions no running worker owns."""
    s = settings()
    require_secrets(s, "run")
    try:
        moment = report_catalog.parse_moment(until, s.timezone, "--until", day_ends=False) if until else None
    except FilterError as e:
        fail(str(e), 2)
    clock = VirtualClock(min(datetime.now(UTC), moment)) if moment else None
    with opened(s, clock) as engine:
        doc = run_once(s, engine, moment)
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
    with opened(s) as engine:
        run_worker(s, engine, every, say)


@app.command("status")
def status(as_json: JsonOpt = False) -> None:
    """What is running and how far behind it is: each view's lag behind its logs, each worker's
    last tick and share, pending follow-up timers and held messages."""
    s = settings()
    with opened(s) as engine:
        doc = status_document(s, engine)
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
