"""huoke's long-running services, as ``huoke worker``, ``projections run`` and ``webhooks run``
start them (a supervisor could start them the same way): each runs until it is stopped (SIGTERM
or Ctrl-C), says what it does in one line at a time, and rides out a store that stops answering —
it says so, backs off (1 s doubling to 30 s), reconnects and carries on from where it stood."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from engine.adapters.clock import AcceleratedClock, SystemClock, VirtualClock
from engine.application.engine import VIEW_NAMES, Engine
from engine.application.journeys.validation import Definitions
from engine.bootstrap.helper import with_helper
from engine.bootstrap.processes import Lease
from engine.bootstrap.stores import meta_for, store_env, vault_for
from engine.domain.leads.segments import SegmentRules
from engine.domain.shared.durations import backoff
from engine.domain.shared.errors import HuokeError
from engine.eventstore.leases import PostgresLeases
from engine.eventstore.recorders import refresh_pools
from engine.eventstore.saving import store_unreachable
from engine.settings import Settings

#: Seconds a worker's tick may start new work; then it looks at its share again (a new worker
#: gets partitions within about this long).
TICK_BUDGET = 2.0

#: How a service tells what it does: a line, and its kind ("" plain, "trouble", "failed").
Say = Callable[[str, str], None]


class SettingsError(HuokeError):
    """Raised when the settings cannot make what a command needs (a clock, say)."""


class ServiceStoppedError(HuokeError):
    """Raised when a service meets an error that is not the store being away."""


def first_line(error: BaseException) -> str:
    """An error's first line (drivers add context lines a user need not read), or its kind."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def failed_where(error: BaseException, frames: int = 5) -> str:
    """Where in huoke ``error`` was raised: its innermost ``frames`` frames in huoke's own code,
    innermost first ("saving.save_batch < reactions.one_page < saving.retry_conflicts …"), so a
    failed tick's one line names the use case without a traceback."""
    ours = Path(__file__).resolve().parents[1]  # the engine package
    found = [
        f"{Path(f.filename).stem}.{f.name}"
        for f in traceback.extract_tb(error.__traceback__)
        if Path(f.filename).resolve().is_relative_to(ours) and not f.filename.endswith("services.py")
    ]
    return " < ".join(reversed(found[-frames:]))


def trouble_pause(process: str, error: BaseException, failures: int, say: Say) -> float:
    """Say in one line that the store does not answer; return the seconds to wait before trying
    again: 1, 2, 4 … at most 30, so a restart is noticed quickly and a long outage not hammered."""
    pause = backoff(failures - 1, timedelta(seconds=1), timedelta(seconds=30)).total_seconds()
    say(f"{process}: {first_line(error)}; trying again in {pause:g}s", "trouble")
    return pause


def run_worker(s: Settings, engine: Engine, every: float, say: Say) -> None:
    """Run everything due every ``every`` seconds (one APScheduler job that schedules its next
    run when it ends: a long pass never has another waiting behind it; one that stopped at its
    time budget with work left is followed at once). On PostgreSQL several
    workers share the lead partitions; on SQLite one worker runs at a time. While the store does
    not answer nothing is sent (every message's marker is recorded before it leaves)."""
    from apscheduler.schedulers.blocking import BlockingScheduler

    lease = Lease(s, engine, one_off=False)
    started = datetime.now(UTC)
    scheduler = BlockingScheduler(job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600})
    failures = 0

    def tick() -> None:
        nonlocal failures
        pause = every
        try:
            lease.rebalance()
            report = engine.run(budget=TICK_BUDGET)
            lease.heartbeat(report, started)
            failures = 0
            if report.unfinished:
                pause = 0  # work is waiting: the next tick starts now (partitions rebalance first)
            if any(report.as_dict().values()):
                done = " · ".join(f"{k} {v}" for k, v in report.as_dict().items() if v)
                say(f"partitions {engine.parts.describe()}: {done}", "")
        except Exception as e:  # a failed tick is logged and retried
            if store_unreachable(e):
                failures += 1
                pause = max(every, trouble_pause("worker", e, failures, say))
                with contextlib.suppress(Exception):
                    refresh_pools()  # the connections that died with the old sessions
            else:
                where = failed_where(e)
                say(f"{type(e).__name__}{f' in {where}' if where else ''}: {e}", "failed")
        finally:
            if scheduler.running:
                scheduler.add_job(tick, "date", run_date=datetime.now(UTC) + timedelta(seconds=pause))

    def stop(*_: Any) -> None:
        scheduler.shutdown(wait=True)  # the tick under way finishes first

    signal.signal(signal.SIGTERM, stop)
    scheduler.add_job(tick, "date", run_date=datetime.now(UTC))
    say(f"huoke worker: running every {every:g}s (Ctrl-C stops)", "")
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        lease.close()


def run_projections(s: Settings, say: Say) -> None:
    """Distributed mode (PostgreSQL): keep every view current from the logs until stopped, as
    the views' one writer (waiting while another process holds that role). A store that goes
    away is waited for; any other error stops the service (``ServiceStoppedError``)."""
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
                    say("projections: the store answers again; following the logs from each view's tracking", "")
                _follow_views(s, leases, stopping, say)
                failures = 0
            except Exception as e:
                if not store_unreachable(e):
                    raise ServiceStoppedError(f"a projection runner stopped: {type(e).__name__}: {e}") from e
                broken, failures = True, failures + 1
                stopping.wait(trouble_pause("projections", e, failures, say))
    except KeyboardInterrupt:
        pass
    finally:
        leases.close()


def _follow_views(s: Settings, leases: PostgresLeases, stopping: threading.Event, say: Say) -> None:
    """Hold the views' writer role, then run one runner per (view, log) until ``stopping`` is set
    or a runner fails (its error is raised)."""
    from projections.runners import start_runners

    if not leases.hold_views(wait=False):
        say(
            "another process keeps the views current; waiting until it stops (workers: set "
            "HUOKE_WORKER_ADVANCES_VIEWS=false when a projection runner runs)",
            "",
        )
        leases.hold_views(wait=True)
    runners = start_runners(store_env(s, "projections"), s.timezone)
    logs = "Leads, Journeys, Deliveries and Referrals"
    say(f"huoke projections: {len(runners)} runners following {logs} (Ctrl-C stops)", "")
    try:
        while not stopping.is_set():
            for runner in runners:
                runner.run_forever(timeout=0.2)
    finally:
        for runner in runners:
            with contextlib.suppress(Exception):
                runner.stop()


def run_webhooks(hooks: Any, every: float, say: Say) -> None:
    """Deliver new events to every subscriber every ``every`` seconds, retrying with back-off,
    until stopped; a store that goes away is waited for and delivery goes on from where it stood."""
    say(f"huoke webhooks: delivering every {every:g}s (Ctrl-C stops)", "")
    failures = 0
    try:
        while True:
            pause = every
            try:
                counts = hooks.deliver(datetime.now(UTC))
                failures = 0
            except Exception as e:
                if not store_unreachable(e):
                    raise
                failures += 1
                pause = max(every, trouble_pause("webhooks", e, failures, say))
                counts = {}
            if any(counts.values()):
                say(" · ".join(f"{k} {v}" for k, v in counts.items()), "")
            time.sleep(pause)
    except KeyboardInterrupt:
        pass


def set_up_store(s: Settings) -> dict[str, Any]:
    """Create every table huoke uses (idempotent), seal what older stores kept in the clear,
    and say where the store and the master key are (never the key itself)."""
    from engine.bootstrap import init_database

    count = init_database(s)
    _seal_webhook_secrets(s)
    return {
        "schema": "huoke.db.init/1",
        "store": "PostgreSQL" if s.database_url else f"SQLite files in {s.data_dir}",
        "partitions": count,
        "master_key": _master_key_source(s),
    }


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


def run_once(s: Settings, engine: Engine, until: datetime | None) -> dict[str, Any]:
    """Process everything pending up to now (or ``until``, on the engine's virtual clock, from
    where the work starts and never before where the store already stands), on the partitions
    no running worker owns."""
    lease = Lease(s, engine, one_off=True)
    with_helper(engine, s, engine.clock)  # both cores (HUOKE_CORES); it starts on the clock as the run does
    try:
        if until is not None:
            engine.refresh_views()
            pending, reached = engine.earliest_pending(), meta_for(s).reached()
            start = max((t for t in (pending, reached) if t is not None), default=None)
            if start is not None:
                engine.clock.rewind_to(start)  # type: ignore[attr-defined]  # the virtual clock
            report = engine.run(until=until)
            meta_for(s).reach(until)
        else:
            report = engine.run()
        return report.as_dict()
    finally:
        lease.close()


def clock_for(s: Settings) -> Any:
    """The wall clock, or a faster one for a live rehearsal (HUOKE_CLOCK_SPEED)."""
    if s.clock_speed == 1:
        return SystemClock()
    if not s.clock_origin:
        raise SettingsError("HUOKE_CLOCK_SPEED needs HUOKE_CLOCK_ORIGIN: the instant the faster clock runs from")
    try:
        origin = datetime.fromisoformat(s.clock_origin)
    except ValueError:
        raise SettingsError(f"HUOKE_CLOCK_ORIGIN {s.clock_origin!r} is not an ISO 8601 date/time") from None
    if origin.tzinfo is None:
        raise SettingsError("HUOKE_CLOCK_ORIGIN needs a UTC offset, e.g. 2026-01-01T00:00:00+00:00")
    return AcceleratedClock(origin, s.clock_speed)


def command_engine(s: Settings, clock: Any = None, journeys: bool = True) -> Engine:
    """The engine for one command: a reader of the views (``run`` and ``worker`` take the writer's
    role through their leases). Commands that need no journeys (``journeys=False``) do not read
    the journeys folder at all."""
    none = Definitions([], SegmentRules((), (), (), "none")) if not journeys else None
    # HUOKE_CLOCK=store (a demo's or a simulation's store): its commands happen when its work stands.
    store_time = VirtualClock(datetime.now(UTC)) if s.clock == "store" and clock is None else None
    from engine.bootstrap import bootstrap

    engine = bootstrap(s, clock or store_time or clock_for(s), definitions=none)
    engine.owns_views = False
    if store_time is not None:  # where the store's work stands (now for a store with none yet)
        store_time.rewind_to(store_stands(s, engine) or store_time.now())
    return engine


def store_stands(s: Settings, engine: Engine) -> datetime | None:
    """Where a simulated store's time stands: the later of the last moment a run reached and its
    newest delivery event."""
    from engine.bootstrap import meta_for

    moments = [t for t in (meta_for(s).reached(), engine.last_moment()) if t is not None]
    return max(moments, default=None)


def advance_views_if_alone(s: Settings, engine: Engine, names: frozenset[str]) -> None:
    """After a command changed what the views ``names`` show: on SQLite with no worker running,
    bring them up to date now (a report just after shows the change); with a worker, or on
    PostgreSQL with its projections runner, their writer does so within seconds."""
    from engine.eventstore.coordination import AlreadyRunningError
    from engine.eventstore.leases import FileLease

    if s.database_url:
        return
    try:
        lease = FileLease(s.data_dir)
    except AlreadyRunningError:
        return
    try:
        engine.views_owned = names
        engine.refresh_views()
    finally:
        engine.owns_views = False
        lease.close()


def run_bus(bus: Any, say: Say) -> None:
    """Consume leads and lifecycle events from NATS and publish huoke's events to it until
    stopped (SIGTERM or Ctrl-C); each message is acknowledged after the store committed it."""
    import asyncio

    settings = bus.settings
    say(f"huoke bus: {settings.nats_url} (prefix {settings.bus_prefix}; consume {bus.consume}, relay {bus.relay})", "")

    async def main() -> None:
        app = bus.app()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, app.exit)
        await app.run()

    try:
        asyncio.run(main())
    finally:
        say(" · ".join(f"{k} {v}" for k, v in bus.counts.items()), "")
        bus.close()
