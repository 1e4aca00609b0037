"""Coordination between huoke processes through the database itself.

- ``Meta``: huoke's own small tables (set-up marker, the partition count, worker heartbeats), in
  the PostgreSQL schema or in ``huoke.db`` beside the SQLite files.
- ``PostgresLeases``: a worker owns lead partitions through session advisory locks, so a
  worker that dies (its session ends) frees its share at once; live workers see each other
  through heartbeats and take an equal share each, of the partitions and of the views (each
  view has one writer at a time: the worker holding its lock, or `projections run`).
- ``FileLease``: SQLite is single-writer: one worker (or ``run``) at a time holds an exclusive
  lock on a file beside the data; the OS releases it when the process dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import sqlite3
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from engine.domain.shared.errors import HuokeError

#: A worker whose heartbeat is older than this (or whose session is gone) has no share.
HEARTBEAT_TIMEOUT = timedelta(seconds=30)
#: The advisory locks (objid) of the views' writers start here; partitions use 0..count-1.
VIEWS_LOCK = 1_000_000
#: A worker is live while its heartbeat is fresh and its database session exists (PostgreSQL).
ALIVE = "last_tick > %s AND backend_pid IN (SELECT pid FROM pg_stat_activity)"
#: Seconds between a worker's first heartbeat and its first claim.
JOIN_DELAY = 1.0
#: The meta key of the moment simulated runs reached (a store on its own clock stands there).
REACHED = "clock_reached"
#: Serialises ``db init`` across processes.
INIT_LOCK = 1_000_001


#: Seconds between tries for a view's writer lock while another process holds it.
VIEW_LOCK_POLL = 0.5


class NotInitialisedError(HuokeError):
    """Raised when the database has not been set up with ``huoke db init``."""


class AlreadyRunningError(HuokeError):
    """Raised when a second worker starts on a single-writer (SQLite) store."""


def pg_connect(pg: dict[str, str], timeout: float = 10) -> psycopg.Connection[Any]:
    return psycopg.connect(
        connect_timeout=max(1, round(timeout)),
        dbname=pg["POSTGRES_DBNAME"],
        host=pg["POSTGRES_HOST"],
        port=int(pg["POSTGRES_PORT"]),
        user=pg["POSTGRES_USER"],
        password=pg["POSTGRES_PASSWORD"] or None,
        autocommit=True,
    )


def pg_probe(pg: dict[str, str]) -> Any:
    """A callable that raises unless PostgreSQL answers ``SELECT 1`` (on one connection of its
    own, opened again after a loss, waiting at most two seconds for it)."""
    held: list[psycopg.Connection[Any]] = []

    def probe() -> None:
        try:
            if not held or held[0].closed:
                held[:] = [pg_connect(pg, timeout=2)]
            held[0].execute("SELECT 1")
        except psycopg.Error:
            if held:
                with contextlib.suppress(psycopg.Error):
                    held[0].close()
                held.clear()
            raise

    return probe


def lock_space(schema: str) -> int:
    """The advisory-lock class id of one schema (tests and tenants share a database)."""
    return zlib.crc32(schema.encode()) - 2**31


#: huoke's own tables (beside the event stores and the views).
TABLES = ("huoke_meta", "huoke_workers", "huoke_bus_inbox", "huoke_webhooks", "huoke_webhook_dead")


@dataclass
class Meta:
    """huoke's own tables: where set-up is recorded and workers report."""

    pg: dict[str, str] | None
    data_dir: Path

    @property
    def schema(self) -> str:
        return self.pg["POSTGRES_SCHEMA"] if self.pg else ""

    def _table(self, name: str) -> Any:
        return sql.Identifier(self.schema, name) if self.pg else name

    @contextmanager
    def _sqlite(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.data_dir / "huoke.db", timeout=30)
        try:
            with conn:
                yield conn
        finally:
            conn.close()

    def create(self, conn: psycopg.Connection[Any] | None = None) -> None:
        """Create huoke's tables (idempotent)."""
        ddl = [
            "CREATE TABLE IF NOT EXISTS {} (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS {} (worker_id TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL, "
            "backend_pid INTEGER NOT NULL, started_at TEXT NOT NULL, last_tick TEXT NOT NULL, "
            "partitions TEXT NOT NULL, views TEXT NOT NULL, report TEXT NOT NULL)",
            # Inbound bus messages already applied (a redelivery changes nothing).
            "CREATE TABLE IF NOT EXISTS {} (message_id TEXT PRIMARY KEY, subject TEXT NOT NULL, at TEXT NOT NULL)",
            # Outgoing webhook subscriptions, how far each has delivered, and what it gave up on.
            "CREATE TABLE IF NOT EXISTS {} (name TEXT PRIMARY KEY, url TEXT NOT NULL, events TEXT NOT NULL, "
            "secret TEXT NOT NULL, positions TEXT NOT NULL, attempts INTEGER NOT NULL, next_try TEXT NOT NULL, "
            "last_error TEXT NOT NULL, created_at TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS {} (name TEXT NOT NULL, event_id TEXT NOT NULL, at TEXT NOT NULL, "
            "error TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (name, event_id))",
        ]
        tables = ("huoke_meta", "huoke_workers", "huoke_bus_inbox", "huoke_webhooks", "huoke_webhook_dead")
        if conn is not None:
            for statement, table in zip(ddl, tables, strict=True):
                conn.execute(sql.SQL(statement).format(self._table(table)))
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self._sqlite() as c:
            for statement, table in zip(ddl, tables, strict=True):
                c.execute(statement.format(table))

    def get(self, key: str) -> str | None:
        try:
            if self.pg is None:
                if not (self.data_dir / "huoke.db").exists():
                    return None
                with self._sqlite() as c:
                    row = c.execute("SELECT value FROM huoke_meta WHERE key = ?", (key,)).fetchone()
            else:
                with pg_connect(self.pg) as conn:
                    row = conn.execute(
                        sql.SQL("SELECT value FROM {} WHERE key = %s").format(self._table("huoke_meta")), (key,)
                    ).fetchone()
        except (sqlite3.OperationalError, psycopg.errors.UndefinedTable):
            return None
        return str(row[0]) if row else None

    def query(
        self, statement: str, params: Sequence[Any] = (), many: Sequence[Sequence[Any]] = ()
    ) -> list[dict[str, Any]]:
        """Run one statement on huoke's own tables (``{name}`` names a table, ``?`` a value),
        once with ``params`` or once per row of ``many`` (one transaction); the rows it returns,
        as dicts."""
        if self.pg is None:
            names = {t: t for t in TABLES}
            with self._sqlite() as c:
                c.row_factory = sqlite3.Row
                text = statement.format(**names)
                lite = c.executemany(text, [tuple(r) for r in many]) if many else c.execute(text, tuple(params))
                return [dict(r) for r in lite.fetchall()] if lite.description else []
        names = {t: f'"{self.schema}"."{t}"' for t in TABLES}
        text = statement.format(**names).replace("?", "%s")
        with pg_connect(self.pg) as conn, conn.transaction(), conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
            if many:
                cur.executemany(text, [tuple(r) for r in many])
                return []
            cur.execute(text, tuple(params))
            return list(cur.fetchall()) if cur.description else []

    def reached(self) -> datetime | None:
        """The moment a simulated run last reached (``run --until``; None if none did)."""
        value = self.get(REACHED)
        return datetime.fromisoformat(value) if value else None

    def reach(self, moment: datetime) -> None:
        """Record that a simulated run reached ``moment`` (kept when later than the last)."""
        if (self.reached() or moment) > moment:
            return
        self.query(
            "INSERT INTO {huoke_meta} VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (REACHED, moment.isoformat()),
        )

    def seen_messages(self, ids: list[str]) -> list[str]:
        """Which of ``ids`` (inbound bus messages) were applied already."""
        if not ids:
            return []
        marks = ", ".join("?" for _ in ids)
        rows = self.query(f"SELECT message_id FROM {{huoke_bus_inbox}} WHERE message_id IN ({marks})", ids)  # noqa: S608
        return [r["message_id"] for r in rows]

    def remember_messages(self, ids: list[str], subject: str) -> None:
        """Record inbound bus messages as applied."""
        at = datetime.now(UTC).isoformat()
        self.query(
            "INSERT INTO {huoke_bus_inbox} VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
            many=[(i, subject, at) for i in ids],
        )

    def put_default(self, key: str, value: str, conn: psycopg.Connection[Any] | None = None) -> str:
        """Set ``key`` unless it is set; return the value in force."""
        if conn is not None:
            conn.execute(
                sql.SQL("INSERT INTO {} VALUES (%s, %s) ON CONFLICT (key) DO NOTHING").format(
                    self._table("huoke_meta")
                ),
                (key, value),
            )
        else:
            with self._sqlite() as c:
                c.execute("INSERT INTO huoke_meta VALUES (?, ?) ON CONFLICT (key) DO NOTHING", (key, value))
        return self.get(key) or value

    def partitions(self) -> int:
        """The partition count fixed at ``db init``; raises NotInitialisedError before it."""
        value = self.get("partitions")
        if value is None:
            where = f"PostgreSQL schema {self.schema!r}" if self.pg else f"{self.data_dir}"
            raise NotInitialisedError(f"the database ({where}) is not set up: run `huoke db init` first")
        return int(value)

    def workers(self) -> list[dict[str, Any]]:
        """Every worker that reported, newest tick first (PostgreSQL; SQLite keeps one row)."""
        columns = "worker_id, host, pid, started_at, last_tick, partitions, views, report"
        fresh = (datetime.now(UTC) - HEARTBEAT_TIMEOUT).isoformat()
        try:
            if self.pg is None:
                with self._sqlite() as c:
                    c.row_factory = sqlite3.Row
                    rows = c.execute(
                        f"SELECT {columns}, last_tick > ? AS alive FROM huoke_workers ORDER BY last_tick DESC",  # noqa: S608
                        (fresh,),
                    )
                    return [{**dict(r), "alive": bool(r["alive"])} for r in rows]
            query = f"SELECT {columns}, ({ALIVE}) AS alive FROM {{}} ORDER BY last_tick DESC"  # noqa: S608 - fixed text
            with pg_connect(self.pg) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
                cur.execute(sql.SQL(query).format(self._table("huoke_workers")), (fresh,))
                return list(cur.fetchall())
        except (sqlite3.OperationalError, psycopg.errors.UndefinedTable):
            return []

    def report_sqlite(self, worker_id: str, started: datetime, partitions: str, report: str) -> None:
        """The single SQLite worker's heartbeat."""
        now = datetime.now(UTC).isoformat()
        with self._sqlite() as c:
            c.execute(
                "INSERT INTO huoke_workers VALUES (?, ?, ?, 0, ?, ?, ?, 'all', ?) ON CONFLICT (worker_id) DO UPDATE "
                "SET last_tick = excluded.last_tick, partitions = excluded.partitions, report = excluded.report",
                (worker_id, socket.gethostname(), os.getpid(), started.isoformat(), now, partitions, report),
            )
            c.execute("DELETE FROM huoke_workers WHERE worker_id <> ?", (worker_id,))


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created) among the processes of this machine."""
    with path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextmanager
def init_lock(pg: dict[str, str] | None, data_dir: Path | None = None) -> Iterator[psycopg.Connection[Any] | None]:
    """Hold the set-up lock, so concurrent ``db init`` runs never collide: on PostgreSQL an
    advisory lock (yields the locked connection), on SQLite a file lock in ``data_dir``."""
    if pg is None:
        if data_dir is None:
            yield None
            return
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        with file_lock(data_dir / ".init.lock"):
            yield None
        return
    with pg_connect(pg) as conn:
        space = lock_space(pg["POSTGRES_SCHEMA"])
        conn.execute("SELECT pg_advisory_lock(%s, %s)", (space, INIT_LOCK))
        try:
            # Under the lock: two concurrent CREATE SCHEMA IF NOT EXISTS can collide in the catalogue.
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(pg["POSTGRES_SCHEMA"])))
            yield conn
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s, %s)", (space, INIT_LOCK))
