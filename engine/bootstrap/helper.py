"""An embedded engine on both cores: a helper process that owns most of the lead partitions.

An embedded engine is one Python process, so it used one core. With a helper (``HUOKE_CORES=2``,
the default), the engine process keeps a quarter of the partitions, the views, the agent desk, the
calendar review and the loop's decisions (when the clock moves and to what); the helper process
owns the other partitions and works each step of the loop with it: its leads' lead events,
their journeys' timers, their messages and the messages' effects. Both write to the same SQLite
files: SQLite takes one writer at a time, and every write transaction asks for the lock first
(``BEGIN IMMEDIATE``, see ``engine.eventstore.recorders``). No two processes ever write the same
lead's enrolments, deliveries or contact history (``engine.application.partitions``).

A step is begun in the helper, done here, then finished together, so a run is the same run with
or without a helper: one clock (the helper's is moved to this one's at every step), one loop,
each partition's own position in each log. While the helper works, this process keeps the views
up with what it records. If the helper dies, the run stops with an error, and what it had not
recorded is still pending at its partitions' positions: the next run takes it up, and a message
that left before the crash is found in the outbox and not sent again.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import traceback
from collections.abc import Callable
from datetime import datetime
from typing import Any

from engine.application.engine import Engine, RunReport
from engine.application.partitions import Partitions
from engine.application.ports import Clock
from engine.domain.shared.errors import HuokeError
from engine.settings import Settings

#: The share of the partitions the helper owns: the engine process also keeps the views and the
#: desk (measured on 5,000 leads x 60 days: a half left it waiting for the engine, all of them
#: left the engine waiting for it).
HELPER_SHARE = 0.75


class HelperFailedError(HuokeError):
    """The helper process failed or stopped in the middle of a run."""


class HelperProcess:
    """The engine's side of the helper: starts it, gives it a step, takes its answer."""

    def __init__(self, settings: Settings, parts: Partitions, clock: Clock) -> None:
        self.parts = parts
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no inherited connections
        self._conn, theirs = context.Pipe()
        self._process = context.Process(
            target=serve, args=(settings, parts, clock, theirs, os.getpid()), name="huoke-helper", daemon=True
        )
        self._process.start()
        theirs.close()
        self._step = ""
        self._pending = False

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def begin(self, step: str, *args: Any) -> None:
        if self._pending:  # the engine's own part of the last step failed: its answer is not wanted
            self.finish()
        self._step = step
        try:
            self._conn.send((step, args))
        except OSError as e:
            raise self._failed(f"could not be given its {step} step ({e})") from None
        self._pending = True

    def ready(self, timeout: float = 0.0) -> bool:
        """Whether the step's answer is in (waiting up to ``timeout`` seconds for it)."""
        try:
            return bool(self._conn.poll(timeout))
        except OSError:
            return True  # finish() says what happened

    def finish(self) -> Any:
        self._pending = False
        try:
            kind, value = self._conn.recv()
        except (EOFError, OSError):
            raise self._failed(f"stopped during its {self._step} step") from None
        if kind == "error":
            raise HelperFailedError(f"the helper process failed in its {self._step} step:\n{value}")
        return value

    def _failed(self, what: str) -> HelperFailedError:
        self._process.join(timeout=5)
        return HelperFailedError(
            f"the helper process (pid {self._process.pid}) {what}; exit code {self._process.exitcode}. "
            "What it had not recorded is still pending: run again"
        )

    def close(self) -> None:
        """Ask the helper to close its stores and end; a helper that does not is ended."""
        if self._process.is_alive():
            try:
                if self._pending:
                    self._conn.recv()
                self._conn.send(("close", ()))
            except (EOFError, OSError):
                pass
            self._process.join(timeout=30)
            if self._process.is_alive():
                self._process.terminate()
                self._process.join(timeout=5)
        self._conn.close()


def serve(settings: Settings, parts: Partitions, clock: Clock, conn: Any, parent: int) -> None:
    """The helper process: an engine owning ``parts``, no view and no desk, doing the steps it is
    given until it is told to close (or the engine process goes away)."""
    from engine.bootstrap import bootstrap

    _die_with(parent)

    engine = bootstrap(settings, clock)
    engine.parts, engine.views_owned, engine.works_desk = parts, frozenset(), False
    try:
        while True:
            try:
                step, args = conn.recv()
            except EOFError:
                return
            if step == "close":
                return
            try:
                answer = ("ok", STEPS[step](engine, *args))
            except Exception:
                answer = ("error", traceback.format_exc())
            conn.send(answer)
    finally:
        engine.close()


def _die_with(parent: int) -> None:
    """The helper dies the moment the engine process does (Linux: the parent-death signal), so
    a run started after a crash never finds the old helper still working its partitions."""
    with contextlib.suppress(OSError, AttributeError):  # not Linux: the engine's pipe closing ends it
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the engine process died before the signal was asked for
        os._exit(1)


#: prctl's option (linux/prctl.h): the signal the calling process gets when its parent dies.
PR_SET_PDEATHSIG = 1


def _start(engine: Engine, deadline: float | None, until: datetime | None) -> None:
    """A run begins: its time budget, its horizon, the journeys live now."""
    engine._deadline, engine._horizon = deadline, until
    engine.journeys.refresh_live()


def _settle(engine: Engine, now: datetime) -> tuple[bool, RunReport]:
    engine._move_clock_to(now)
    report = RunReport()
    return engine._settle(report), report


def _fire(engine: Engine, last: datetime, limit: int, paused: list[str]) -> tuple[int, datetime]:
    timers = engine.index.due(last, limit=limit, exclude=paused, parts=engine.parts)
    return engine._fire(timers), engine.clock.now()


#: What the helper does for each step the engine process begins.
STEPS: dict[str, Callable[..., Any]] = {"start": _start, "settle": _settle, "fire": _fire}


def with_helper(engine: Engine, settings: Settings, clock: Clock) -> Engine:
    """Give an embedded engine a helper process (``HUOKE_CORES=2``) owning ``HELPER_SHARE`` of its
    store's partitions. The engine stays one process on PostgreSQL (workers share partitions
    there), with ``HUOKE_CORES=1``, and on a store with one partition (made before SQLite stores
    had more). The engine must use the settings' channels: the helper builds its own from them."""
    count = engine.parts.count
    if settings.cores < 2 or settings.postgres_env() is not None or count < 2 or engine.helper is not None:
        return engine
    taken = min(count - 1, max(1, round(count * HELPER_SHARE)))
    helper_parts = frozenset(range(count - taken, count))
    engine.parts = Partitions(count, frozenset(range(count)) - helper_parts)
    engine.helper = HelperProcess(settings, Partitions(count, helper_parts), clock)
    return engine
