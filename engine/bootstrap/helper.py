"""An embedded engine on both cores: a helper process that a big run lends most partitions to.

An embedded engine is one Python process, so it used one core. With a helper (``HUOKE_CORES=2``,
the default), a run that finds ``HUOKE_HELPER_FROM`` lead events and due timers waiting lends the
helper ``HELPER_SHARE`` of the lead partitions; the engine process keeps the rest, the views, the
agent desk, the calendar review and the loop's decisions (when the clock moves and to what). The
helper works each step of the loop with it: its leads' lead events, their journeys' timers,
their messages and the messages' effects. Both write to the same SQLite files: SQLite takes one
writer at a time, and every write transaction asks for the lock first (``BEGIN IMMEDIATE``, see
``engine.eventstore.recorders``). No two processes ever write the same lead's enrolments,
deliveries or contact history (``engine.application.partitions``); whichever process takes the
partitions up next reads their enrolments and messages afresh.

A step is begun in the helper, done here, then finished together, so a run is the same run with
or without a helper: one clock (the helper's is moved to this one's at every step), one loop,
each partition's own position in each log. While the helper works, this process keeps the views
up with what it records. A smaller run stays in one process: a step's round trip costs more
than the second core saves. If the helper dies, the run stops with an error, and what it had
not recorded is still pending at its partitions' positions: the next run takes it up, and a
message that left before the crash is found in the outbox and not sent again.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import traceback
from collections.abc import Callable
from typing import Any

from engine.application.engine import Engine
from engine.application.partitions import Partitions
from engine.application.ports import Clock
from engine.domain.shared.errors import HuokeError
from engine.eventstore.saving import cache_share
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
        self.parts, self.lends_from = parts, settings.helper_from
        self._settings, self._clock = settings, clock
        self._process: Any = None  # started now (``start``) or for the first run lent to it
        self._step = ""
        self._pending = False
        self._used = False
        self._booted = False  # it said it is up (its stores open); read by idle() or with an answer

    def start(self) -> None:
        """Start the helper process now, so it is ready (about a second) when a run needs it."""
        if self._process is None:
            self._start()

    def _start(self) -> None:
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no inherited connections
        self._conn, theirs = context.Pipe()
        self._process = context.Process(
            target=serve,
            args=(self._settings, self.parts, self._clock, theirs, os.getpid()),
            name="huoke-helper",
            daemon=True,
        )
        self._process.start()
        theirs.close()

    def begin(self, step: str, *args: Any) -> None:
        if self._process is None:
            self._start()
        self._used = True
        if self._pending:  # the engine's own part of the last step failed: its answer is not wanted
            self.finish()
        self._step = step
        try:
            self._conn.send((step, args))
        except OSError as e:
            raise self._failed(f"could not be given its {step} step ({e})") from None
        self._pending = True

    def idle(self) -> bool:
        """Alive, ready for work (its stores open: it says so once) and given no step now."""
        if self._process is None or self._pending or not self._process.is_alive():
            return False
        if not self._booted:
            try:
                self._booted = bool(self._conn.poll()) and self._conn.recv() == ("booted", None)
            except (EOFError, OSError):
                return False
        return self._booted

    def ready(self, timeout: float = 0.0) -> bool:
        """Whether the step's answer is in (waiting up to ``timeout`` seconds for it)."""
        try:
            return bool(self._conn.poll(timeout))
        except OSError:
            return True  # finish() says what happened

    def finish(self) -> Any:
        self._pending = False
        try:
            kind, value = self._recv()
        except (EOFError, OSError):
            raise self._failed(f"stopped during its {self._step} step") from None
        if kind == "error":
            raise HelperFailedError(f"the helper process failed in its {self._step} step:\n{value}")
        return value

    def _recv(self) -> Any:
        """The helper's next answer (past its word that it booted, if not read yet)."""
        message = self._conn.recv()
        if message == ("booted", None):
            self._booted = True
            message = self._conn.recv()
        return message

    def _failed(self, what: str) -> HelperFailedError:
        self._process.join(timeout=5)
        again = (
            "Import the rows again: the leads captured already are recognised, not captured twice"
            if self._step == "capture"
            else "What it had not recorded is still pending: run again"
        )
        return HelperFailedError(
            f"the helper process (pid {self._process.pid}) {what}; exit code {self._process.exitcode}. {again}"
        )

    def close(self) -> None:
        """Ask the helper to close its stores and end; a helper that does not is ended."""
        if self._process is None:
            return
        if not self._used:  # started, never given work: nothing to finish or close cleanly
            self._process.terminate()
            self._process.join(timeout=5)
        elif self._process.is_alive():
            try:
                if self._pending:
                    self._recv()
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
    _die_with(parent)
    engine = helper_engine(settings, parts, clock)
    conn.send(("booted", None))  # the engine process gives it a batch of captures only now
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


def helper_engine(settings: Settings, parts: Partitions, clock: Clock) -> Engine:
    """The helper's engine: it owns ``parts`` and caches their leads, with no view and no desk."""
    from engine.bootstrap import bootstrap

    engine = bootstrap(settings, clock)
    engine.parts, engine.views_owned, engine.works_desk = parts, frozenset(), False
    cache_share(engine.leads, parts.owns)
    return engine


def _die_with(parent: int) -> None:
    """The helper dies the moment the engine process does (Linux: the parent-death signal), so
    a run started after a crash never finds the old helper still working its partitions."""
    with contextlib.suppress(OSError, AttributeError):  # not Linux: the engine's pipe closing ends it
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the engine process died before the signal was asked for
        os._exit(1)


#: prctl's option (linux/prctl.h): the signal the calling process gets when its parent dies.
PR_SET_PDEATHSIG = 1


#: What the helper does for each step the engine process begins.
STEPS: dict[str, Callable[..., Any]] = {
    "settle": Engine.settle_lent,
    "fire": Engine.fire_lent,
    "capture": Engine.capture_lent,
}


def with_helper(engine: Engine, settings: Settings, clock: Clock, start: bool = False) -> Engine:
    """Give an embedded engine a helper (``HUOKE_CORES=2``): a process started for the first run
    with ``HUOKE_HELPER_FROM`` lead events and due timers waiting, which takes ``HELPER_SHARE`` of
    the store's partitions for such runs. The engine stays one process on PostgreSQL (workers
    share partitions there), with ``HUOKE_CORES=1``, and on a store with one partition (made
    before SQLite stores had more). The engine must use the settings' channels: the helper
    builds its own from them. ``start``: start the process now (a caller about to run a big
    backlog: it starts while the caller captures, instead of when the first run waits for it)."""
    count = engine.parts.count
    if settings.cores < 2 or settings.postgres_env() is not None or count < 2 or engine.helper is not None:
        return engine
    taken = min(count - 1, max(1, round(count * HELPER_SHARE)))
    helper = HelperProcess(settings, Partitions(count, frozenset(range(count - taken, count))), clock)
    # Each lead is cached in one process: the helper caches its share, this process the rest
    # (and the last OTHERS_CACHED of the helper's share it used, for its desk and review).
    cache_share(engine.leads, Partitions(count, frozenset(range(count - taken))).owns)
    if start:
        helper.start()
    engine.helper = helper
    return engine
