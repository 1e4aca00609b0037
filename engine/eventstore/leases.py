"""Who writes what: on PostgreSQL each worker's share of the lead partitions (advisory locks,
rebalanced as workers come and go, with heartbeats) and the views' single writer; on SQLite the
one writer's file lock."""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import socket
import time
import uuid
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import psycopg
from psycopg import sql

from engine.eventstore.coordination import (
    ALIVE,
    HEARTBEAT_TIMEOUT,
    JOIN_DELAY,
    VIEW_LOCK_POLL,
    VIEWS_LOCK,
    AlreadyRunningError,
    Meta,
    lock_space,
    pg_connect,
)


class PostgresLeases:
    """One worker's leases on lead partitions (and maybe views), held by its own session."""

    def __init__(self, meta: Meta, count: int, want_views: bool, view_names: Sequence[str] = ()) -> None:
        if meta.pg is None:
            raise ValueError("leases on lead partitions need PostgreSQL")
        self.meta = meta
        self.count = count
        self.want_views = want_views
        self.view_names = list(view_names)
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.started = datetime.now(UTC)
        self.conn = pg_connect(meta.pg)
        self.space = lock_space(meta.schema)
        self.owned: set[int] = set()
        self.views: set[str] = set()
        self.joined = False

    def _try(self, objid: int) -> bool:
        row = self.conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (self.space, objid)).fetchone()
        return bool(row and row[0])

    def _release(self, objid: int) -> None:
        self.conn.execute("SELECT pg_advisory_unlock(%s, %s)", (self.space, objid))

    def live_workers(self) -> int:
        """Workers with a fresh heartbeat whose database session still exists (this one included)."""
        table = self.meta._table("huoke_workers")
        row = self.conn.execute(
            sql.SQL(f"SELECT COUNT(*) FROM {{}} WHERE {ALIVE}").format(table),  # noqa: S608 - fixed text
            ((datetime.now(UTC) - HEARTBEAT_TIMEOUT).isoformat(),),
        ).fetchone()
        return max(1, int(row[0]) if row else 1)

    def heartbeat(self, report: str = "") -> None:
        table = self.meta._table("huoke_workers")
        self.conn.execute(
            sql.SQL(
                "INSERT INTO {} VALUES (%s, %s, %s, pg_backend_pid(), %s, %s, %s, %s, %s) ON CONFLICT (worker_id) "
                "DO UPDATE SET backend_pid = excluded.backend_pid, last_tick = excluded.last_tick, "
                "partitions = excluded.partitions, "
                "views = excluded.views, report = excluded.report"
            ).format(table),
            (
                self.worker_id,
                socket.gethostname(),
                os.getpid(),
                self.started.isoformat(),
                datetime.now(UTC).isoformat(),
                ",".join(str(p) for p in sorted(self.owned)),
                ",".join(sorted(self.views)),
                report,
            ),
        )
        # Rows of workers long gone are only noise in `huoke status`.
        self.conn.execute(
            sql.SQL("DELETE FROM {} WHERE last_tick < %s").format(table),
            ((datetime.now(UTC) - timedelta(hours=1)).isoformat(),),
        )

    def rebalance(self) -> bool:
        """Take or give up partitions so each live worker holds an equal share; True when this
        worker gained a partition (its caches of that partition's aggregates are then stale).
        If the session was lost (and with it every lease), start again with a new one: its
        heartbeat names the new session, so the other workers see this one alive again."""
        try:
            return self._rebalance()
        except psycopg.OperationalError:
            self.reconnect()
            return self._rebalance()

    def reconnect(self) -> None:
        """A new session after the old one was lost (a database restart ends every session and
        with it every lease): nothing is held until claimed again. Raises while the database
        does not answer; the old, broken session is kept until a new one opens."""
        self.owned.clear()
        self.views.clear()
        fresh = pg_connect(self.meta.pg)  # type: ignore[arg-type]
        with contextlib.suppress(psycopg.Error):
            self.conn.close()
        self.conn = fresh

    def _rebalance(self) -> bool:
        self.heartbeat()
        if not self.joined:
            # Announce first, claim a moment later: workers started together then see each other
            # and split the work from their first tick instead of one taking everything.
            time.sleep(JOIN_DELAY)
            self.joined = True
        workers = self.live_workers()
        gained = self._balance(list(range(self.count)), self.owned, math.ceil(self.count / workers), lambda p: p)
        if self.want_views and self.view_names:
            share = math.ceil(len(self.view_names) / workers)
            self._balance(self.view_names, self.views, share, self._view_lock)
        return gained

    def _view_lock(self, name: str) -> int:
        return VIEWS_LOCK + self.view_names.index(name)

    def _balance(self, ids: list[Any], held: set[Any], share: int, lock_of: Any) -> bool:
        """Give up what is over ``share``, take free ones up to it; True if any was taken."""
        for item in sorted(held, key=ids.index, reverse=True):
            if len(held) <= share:
                break
            self._release(lock_of(item))
            held.discard(item)
        gained = False
        # Start looking at a different place in each worker, so two workers do not chase the
        # same free ones.
        offset = zlib.crc32(self.worker_id.encode()) % len(ids)
        for i in range(len(ids)):
            if len(held) >= share:
                break
            item = ids[(offset + i) % len(ids)]
            if item not in held and self._try(lock_of(item)):
                held.add(item)
                gained = True
        return gained

    def take_free(self) -> set[int]:
        """Every partition no one holds (a one-off ``run`` works on what no worker owns)."""
        self._balance(list(range(self.count)), self.owned, self.count, lambda p: p)
        if self.want_views and self.view_names:
            self._balance(self.view_names, self.views, len(self.view_names), self._view_lock)
        return self.owned

    def hold_views(self, wait: bool) -> bool:
        """Every view's writer lock: wait for them (the projection runner) or just try; True when
        all are held."""
        for name in self.view_names:
            if name in self.views:
                continue
            if wait:
                # Polled, not a blocking pg_advisory_lock: a session waiting in one holds a snapshot
                # all along, and an erasure's scrub waits for every snapshot older than it.
                while not self._try(self._view_lock(name)):
                    time.sleep(VIEW_LOCK_POLL)
                self.views.add(name)
            elif self._try(self._view_lock(name)):
                self.views.add(name)
        return set(self.view_names) <= self.views

    def close(self) -> None:
        try:
            table = self.meta._table("huoke_workers")
            self.conn.execute(sql.SQL("DELETE FROM {} WHERE worker_id = %s").format(table), (self.worker_id,))
        except psycopg.Error:
            pass
        self.conn.close()  # ending the session releases every advisory lock


class FileLease:
    """An exclusive lock on ``<data_dir>/worker.lock``: one writer process on SQLite."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / "worker.lock"
        self.file: IO[str] | None = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the process
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.seek(0)
            holder = self.file.read().strip() or "another process"
            self.file.close()
            self.file = None
            raise AlreadyRunningError(
                f"{holder} is already running on {data_dir}: SQLite allows one worker at a time "
                "(use PostgreSQL, HUOKE_DATABASE_URL, to run several)"
            ) from None
        self.file.seek(0)
        self.file.truncate()
        self.file.write(f"huoke pid {os.getpid()} on {socket.gethostname()}")
        self.file.flush()

    def close(self) -> None:
        if self.file is not None:
            fcntl.flock(self.file, fcntl.LOCK_UN)
            self.file.close()
            self.file = None
