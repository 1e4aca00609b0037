"""The recorders huoke runs on: SQLite connections tuned for its writes, process recorders that
take several tracking records in one transaction, and one PostgreSQL connection pool per
process shared by every store (dropped and refreshed after the database restarts). A store's
settings name its factory by topic (older settings name it in ``saving``, which re-exports it)."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent, Tracking, TrackingRecorder
from eventsourcing.postgres import PostgresFactory, PostgresProcessRecorder
from eventsourcing.sqlite import (
    SQLiteConnection,
    SQLiteConnectionPool,
    SQLiteCursor,
    SQLiteFactory,
    SQLiteProcessRecorder,
)
from psycopg import Cursor
from psycopg.rows import DictRow


def record_tracking(recorder: TrackingRecorder, cursor: Any, tracking: Tracking) -> None:
    """Insert a tracking record in the caller's transaction (a view's batch): a position already
    recorded raises ``IntegrityError``, so the batch is applied once."""
    recorder._insert_tracking(cursor, tracking)  # type: ignore[attr-defined]


# ---- recorders -------------------------------------------------------------------------------


class TunedSQLiteConnectionPool(SQLiteConnectionPool):
    """Connection pool whose file connections use synchronous=NORMAL."""

    def _create_connection(self) -> SQLiteConnection:
        connection = super()._create_connection()
        if not self.is_sqlite_memory_mode:
            connection._sqlite_conn.execute("PRAGMA synchronous=NORMAL")
        return connection


class ManyTrackingSQLiteProcessRecorder(SQLiteProcessRecorder):
    """Inserts a batch's events with one statement, and also records ``trackings=[...]`` (one
    per lead partition) in the events' transaction."""

    accepts_many_trackings = True

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """eventsourcing inserts one event per statement to read each one's rowid (its
        notification id). One ``executemany`` instead: the transaction holds SQLite's write lock
        from its first insert, and a new row's rowid is the largest plus one, so the batch's ids
        are the consecutive ones ending at the largest after it. A version already taken still
        raises IntegrityError and the whole transaction rolls back."""
        c.executemany(
            self.insert_events_statement,
            [(s.originator_id.hex if isinstance(s.originator_id, UUID) else s.originator_id,
              s.originator_version, s.topic, s.state) for s in stored_events],
        )  # fmt: skip
        returning: list[int] = []
        if stored_events:
            c.execute(self.select_max_notification_id_statement)
            last = int(c.fetchone()[0])
            returning = list(range(last - len(stored_events) + 1, last + 1))
        single: Tracking | None = kwargs.get("tracking")
        trackings: Sequence[Tracking] = kwargs.get("trackings", ())
        for tracking in (single, *trackings) if single is not None else trackings:
            self._insert_tracking(c, tracking)
        return returning


class TunedSQLiteFactory(SQLiteFactory):
    """SQLiteFactory using the tuned pool and the many-tracking process recorder."""

    process_recorder_class = ManyTrackingSQLiteProcessRecorder

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        old = self.datastore.pool
        self.datastore.pool = TunedSQLiteConnectionPool(db_name=old.db_name, lock_timeout=old.lock_timeout)


class ManyTrackingPostgresProcessRecorder(PostgresProcessRecorder):
    """Also records ``trackings=[...]`` in the events' transaction."""

    accepts_many_trackings = True

    def _insert_events(self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any) -> None:
        trackings: Sequence[Tracking] = kwargs.get("trackings", ())
        for tracking in trackings:
            self._insert_tracking(curs, tracking)
        super()._insert_events(curs, stored_events, **kwargs)


class _SharedPool:
    """One process's connection pool to one database, and how many stores use it."""

    def __init__(self, pool: Any) -> None:
        self.pool, self.users = pool, 0


_SHARED_POOLS: dict[tuple[Any, ...], _SharedPool] = {}
_SHARED_POOLS_LOCK = threading.Lock()


class SharedPoolPostgresFactory(PostgresFactory):
    """PostgresFactory whose stores share one connection pool per process and database.

    A process opens a dozen stores (the applications, the views, the vault) and eventsourcing
    gives each its own pool, each with its own idle connection, overflow and three threads: in
    the live topology test a worker held 13 connections, the projections runner 29 and
    ``huoke serve`` 10 (65 of PostgreSQL's default 100 for two workers, a runner and serve). Here
    the first store's pool serves them all (``POSTGRES_POOL_SIZE`` kept open, up to
    ``POSTGRES_MAX_OVERFLOW`` more under load): 4, 16 and 3. Closing a store gives its share
    back; the last one closes the pool."""

    process_recorder_class = ManyTrackingPostgresProcessRecorder

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        datastore = self.datastore
        own = datastore.pool  # not opened yet: eventsourcing opens a pool on first use
        kwargs: dict[str, Any] = own.kwargs if isinstance(own.kwargs, dict) else {}
        key = (os.getpid(), *sorted((k, str(v)) for k, v in kwargs.items() if k != "row_factory"))
        with _SHARED_POOLS_LOCK:
            shared = _SHARED_POOLS.get(key)
            if shared is None or shared.pool.closed:
                shared = _SHARED_POOLS[key] = _SharedPool(own)
            shared.users += 1
        datastore.pool = shared.pool
        released = threading.Event()

        def give_back() -> None:
            """This store is done with the pool (once, however often it is closed)."""
            with _SHARED_POOLS_LOCK:
                if released.is_set():
                    return
                released.set()
                shared.users -= 1
                if shared.users == 0:
                    shared.pool.close()
                    if _SHARED_POOLS.get(key) is shared:
                        del _SHARED_POOLS[key]

        datastore.close = give_back  # type: ignore[method-assign]


def refresh_pools() -> None:
    """After the database went away, drop this process's pooled connections that died with it
    (a restart ends every session; eventsourcing would otherwise hand them out one by one, each
    failing a statement): each open pool tests its idle connections and replaces the broken."""
    with _SHARED_POOLS_LOCK:
        pools = [shared.pool for shared in _SHARED_POOLS.values()]
    for pool in pools:
        if not pool.closed:
            pool.check()


#: The settings bootstrap gives eventsourcing to use the recorders above.
SQLITE_FACTORY_TOPIC = "engine.eventstore.recorders:TunedSQLiteFactory"
POSTGRES_FACTORY_TOPIC = "engine.eventstore.recorders:SharedPoolPostgresFactory"
