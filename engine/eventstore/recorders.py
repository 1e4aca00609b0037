"""The recorders huoke runs on: SQLite connections tuned for its writes, process recorders that
take several tracking records in one transaction, and one PostgreSQL connection pool per
process shared by every store (dropped and refreshed after the database restarts). A store's
settings name its factory by topic (older settings name it in ``saving``, which re-exports it)."""

from __future__ import annotations

import functools
import os
import sqlite3
import threading
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple
from uuid import UUID

from eventsourcing.persistence import InterfaceError, StoredEvent, Tracking, TrackingRecorder
from eventsourcing.postgres import PostgresFactory, PostgresProcessRecorder
from eventsourcing.sqlite import (
    SQLITE3_DEFAULT_LOCK_TIMEOUT,
    SQLiteConnection,
    SQLiteConnectionPool,
    SQLiteCursor,
    SQLiteFactory,
    SQLiteProcessRecorder,
    SQLiteTransaction,
)
from psycopg import Cursor
from psycopg import sql as psql
from psycopg.rows import DictRow

#: The compressor every store's events go through (eventsourcing's ``COMPRESSOR_TOPIC``).
COMPRESSOR_TOPIC = "engine.eventstore.compression:StoredStateCompressor"


@functools.lru_cache(maxsize=1 << 15)
def uuid_of(text: str) -> UUID:
    """The UUID ``text`` names, one object for the same text while it is among the last 32,768
    asked for. Every notification a log reader selects has its originator's id converted, and
    every UUID in an event's body too: a settle pass reads each lead's events several times (its
    journeys, the views, its referrals), and ``UUID(text)`` took 4.5 µs a call, more than a
    million calls a run of 40,000 leads' first day."""
    return UUID(text)


def record_tracking(recorder: TrackingRecorder, cursor: Any, tracking: Tracking) -> None:
    """Insert a tracking record in the caller's transaction (a view's batch): a position already
    recorded raises ``IntegrityError``, so the batch is applied once."""
    recorder._insert_tracking(cursor, tracking)  # type: ignore[attr-defined]


# ---- recorders -------------------------------------------------------------------------------


#: Prepared statements each SQLite connection keeps. eventsourcing opens its connections with
#: ``cached_statements=True``, which sqlite3 takes as a cache of one statement: every statement
#: run after a different one was compiled again (a read transaction's BEGIN and SELECT took
#: 15 µs instead of 7; a view's statements, which take turns event after event, each time).
CACHED_STATEMENTS = 256
#: WAL pages written before a commit copies them into the database file (SQLite's default is
#: 1,000, 4 MB). A store's hot pages (its index roots, the tracking and claims tables) are written
#: by almost every commit; checkpointed less often, each is copied once for many commits. Measured
#: on 1,000 leads x 30 days: commits took 8.3% of the run at 1,000 pages, 6.2% at 5,000, 5.6% at
#: 10,000 (at most 40 MB of WAL a store between checkpoints) and 4.5% at 20,000.
WAL_AUTOCHECKPOINT = 10_000


class _WritingTransaction(SQLiteTransaction):
    """A transaction that writes takes the store's write lock first (``BEGIN IMMEDIATE``). With
    a deferred ``BEGIN``, a transaction that reads before it writes cannot get the lock when
    another process (an embedded engine's helper, an import) committed since its read began:
    SQLite refuses it at once (busy snapshot) instead of waiting for the lock.

    A read (``commit=False``) issues no ``BEGIN``: each of its statements reads one snapshot of
    its own (SQLite's autocommit), and the ``rollback`` that ends it has nothing to undo. Every
    read huoke and eventsourcing make on SQLite is one statement (a head, a position, a page, a
    view's query), or chunks of a claims lookup that need no common snapshot (claims are only
    added); the BEGIN and ROLLBACK around each were a quarter of the statements a run issues
    (``test_a_read_on_sqlite_is_one_statement_without_begin``)."""

    def __enter__(self) -> SQLiteCursor:
        cursor = self.connection.cursor()
        if self.commit:
            cursor.execute("BEGIN IMMEDIATE")
        return cursor


class TunedSQLiteConnection(SQLiteConnection):
    @contextmanager
    def transaction(self, *, commit: bool) -> Iterator[SQLiteCursor]:
        with _WritingTransaction(self, commit=commit) as curs, curs:
            yield curs


class TunedSQLiteConnectionPool(SQLiteConnectionPool):
    """Connection pool whose connections keep their prepared statements and whose file
    connections use WAL with synchronous=NORMAL and fewer checkpoints (eventsourcing's own
    connections, otherwise)."""

    def _create_connection(self) -> SQLiteConnection:
        try:
            c = sqlite3.connect(
                database=self.db_name,
                uri=True,
                check_same_thread=False,
                isolation_level=None,  # autocommit: eventsourcing's transactions issue BEGIN
                cached_statements=CACHED_STATEMENTS,
                timeout=self.lock_timeout or SQLITE3_DEFAULT_LOCK_TIMEOUT,
            )
        except (sqlite3.Error, TypeError) as e:
            raise InterfaceError(e) from e
        if not self.is_sqlite_memory_mode:
            if not self.is_journal_mode_wal:
                if str(c.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                    c.execute("PRAGMA journal_mode=WAL")
                    self.journal_mode_was_changed_to_wal = True
                self.is_journal_mode_wal = True
            c.execute("PRAGMA synchronous=NORMAL")
            c.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT}")
        c.row_factory = sqlite3.Row
        return TunedSQLiteConnection(sqlite_conn=c, max_age=self.max_age)


#: Where a store keeps its claims: the events table's name with this suffix.
CLAIMS_SUFFIX = "_claims"


class Claim(NamedTuple):
    """A unique ``name`` recorded with the events that make it true, and what it names; claims
    of one ``owner`` (a lead's contacts, say) are read together."""

    name: str
    value: str
    owner: str = ""


class ManyTrackingSQLiteProcessRecorder(SQLiteProcessRecorder):
    """Inserts a batch's events with one statement, and also records ``trackings=[...]`` (one
    per lead partition) and ``claims=[Claim, ...]`` in the events' transaction.

    A claim is a unique name recorded with the events that make it true (an identity key and the
    lead it names, the n-th message sent to a lead): a name already claimed raises
    IntegrityError and nothing of the batch is written, as a version already taken does. It is
    the events' index, not a view: written in their transaction, never behind them."""

    accepts_many_trackings = True

    def __init__(self, datastore: Any, *, events_table_name: str = "stored_events") -> None:
        self.claims_table_name = table = events_table_name + CLAIMS_SUFFIX
        self.ids_are_uuids = datastore.originator_id_type == "uuid"
        self.insert_claim_statement = f"INSERT INTO {table} VALUES (?, ?, ?)"  # noqa: S608 - own table
        self.count_claims_statement = f"SELECT COUNT(*) FROM {table}"  # noqa: S608 - own table
        super().__init__(datastore, events_table_name=events_table_name)

    def convert_originator_id(self, originator_id: str) -> UUID | str:
        return uuid_of(originator_id) if self.ids_are_uuids else originator_id

    def construct_create_table_statements(self) -> list[str]:
        table = self.claims_table_name
        return [
            *super().construct_create_table_statements(),
            f"CREATE TABLE IF NOT EXISTS {table} (name TEXT PRIMARY KEY, value TEXT NOT NULL, owner TEXT NOT NULL) "
            "WITHOUT ROWID",
            f"CREATE INDEX IF NOT EXISTS {table}_owner ON {table} (owner) WHERE owner != ''",
        ]

    def select_claims(self, names: Collection[str]) -> dict[str, str]:
        """The value claimed under each of ``names`` that is claimed (one statement per 500)."""
        return {row[0]: row[1] for row in self._select("name", names)}

    def select_owned_claims(self, owners: Collection[str]) -> list[Claim]:
        """The claims of each of ``owners``, in the order of their names (one statement per 500)."""
        return sorted(Claim(*row) for row in self._select("owner", owners))

    def _select(self, column: str, keys: Collection[str]) -> list[tuple[str, str, str]]:
        rows: list[tuple[str, str, str]] = []
        ordered = sorted(keys)
        with self.datastore.transaction(commit=False) as c:
            for i in range(0, len(ordered), 500):
                chunk = ordered[i : i + 500]
                marks = ",".join("?" * len(chunk))
                where = f"{column} IN ({marks})" + (" AND owner != ''" if column == "owner" else "")
                c.execute(f"SELECT name, value, owner FROM {self.claims_table_name} WHERE {where}", chunk)  # noqa: S608
                rows.extend(c.fetchall())
        return rows

    def max_tracking_ids(self, names: Sequence[str]) -> dict[str, int]:
        """The position recorded under each of ``names`` (a follower's, one per lead partition),
        in one statement; a name with none is left out."""
        marks = ",".join("?" * len(names))
        with self.datastore.transaction(commit=False) as c:
            c.execute(  # eventsourcing's tracking table; the names are parameters
                "SELECT application_name, MAX(notification_id) FROM tracking "  # noqa: S608
                f"WHERE application_name IN ({marks}) GROUP BY application_name",
                list(names),
            )
            return {row[0]: int(row[1]) for row in c.fetchall() if row[1] is not None}

    def add_claims(self, claims: Sequence[Claim]) -> int:
        """Claim each name not yet claimed (a store's migration; idempotent); how many were new."""
        with self.datastore.transaction(commit=True) as c:
            c.execute(self.count_claims_statement)
            before = int(c.fetchone()[0])
            c.executemany(self.insert_claim_statement.replace("INSERT", "INSERT OR IGNORE", 1), list(claims))
            c.execute(self.count_claims_statement)
            return int(c.fetchone()[0]) - before

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
        claims: Sequence[Claim] = kwargs.get("claims", ())
        if claims:
            c.executemany(self.insert_claim_statement, claims)
        return returning


class TunedSQLiteFactory(SQLiteFactory):
    """SQLiteFactory using the tuned pool and the many-tracking process recorder."""

    process_recorder_class = ManyTrackingSQLiteProcessRecorder

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        old = self.datastore.pool
        self.datastore.pool = TunedSQLiteConnectionPool(db_name=old.db_name, lock_timeout=old.lock_timeout)


class ManyTrackingPostgresProcessRecorder(PostgresProcessRecorder):
    """Also records ``trackings=[...]`` and ``claims={name: value}`` in the events' transaction
    (see the SQLite recorder)."""

    accepts_many_trackings = True

    def __init__(self, datastore: Any, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        self.claims_table_name = self.events_table_name + CLAIMS_SUFFIX
        self.check_identifier_length(self.claims_table_name + "_owner")
        table = psql.Identifier(self.claims_table_name)
        self.sql_create_statements += [
            psql.SQL(
                "CREATE TABLE IF NOT EXISTS {schema}.{table} "
                "(name text PRIMARY KEY, value text NOT NULL, owner text NOT NULL)"
            ).format(schema=psql.Identifier(self.datastore.schema), table=table),
            psql.SQL("CREATE INDEX IF NOT EXISTS {index} ON {schema}.{table} (owner) WHERE owner != ''").format(
                index=psql.Identifier(self.claims_table_name + "_owner"),
                schema=psql.Identifier(self.datastore.schema),
                table=table,
            ),
        ]

    def _claims(self) -> psql.Composed:
        return psql.SQL("{schema}.{table}").format(
            schema=psql.Identifier(self.datastore.schema), table=psql.Identifier(self.claims_table_name)
        )

    def _insert_events(self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any) -> None:
        trackings: Sequence[Tracking] = kwargs.get("trackings", ())
        for tracking in trackings:
            self._insert_tracking(curs, tracking)
        claims: Sequence[Claim] = kwargs.get("claims", ())
        if claims:
            curs.executemany(psql.SQL("INSERT INTO {} VALUES (%s, %s, %s)").format(self._claims()), claims)
        super()._insert_events(curs, stored_events, **kwargs)

    def select_claims(self, names: Collection[str]) -> dict[str, str]:
        """The value claimed under each of ``names`` that is claimed (one statement)."""
        return {claim.name: claim.value for claim in self._select("name", names)}

    def max_tracking_ids(self, names: Sequence[str]) -> dict[str, int]:
        """The position recorded under each of ``names`` (see the SQLite recorder), one statement."""
        query = psql.SQL(
            "SELECT application_name, MAX(notification_id) FROM {schema}.{table} "
            "WHERE application_name = ANY(%s) GROUP BY application_name"
        ).format(schema=psql.Identifier(self.datastore.schema), table=psql.Identifier(self.tracking_table_name))
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(query, (list(names),), prepare=True)
            rows = curs.fetchall()
        return {row["application_name"]: int(row["max"]) for row in rows if row["max"] is not None}

    def select_owned_claims(self, owners: Collection[str]) -> list[Claim]:
        """The claims of each of ``owners``, in the order of their names (one statement)."""
        return sorted(self._select("owner", owners))

    def _select(self, column: str, keys: Collection[str]) -> list[Claim]:
        if not keys:
            return []
        where = psql.SQL("owner = ANY(%s) AND owner != ''" if column == "owner" else "name = ANY(%s)")
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                psql.SQL("SELECT name, value, owner FROM {} WHERE ").format(self._claims()) + where, (list(keys),)
            )
            return [Claim(row["name"], row["value"], row["owner"]) for row in curs.fetchall()]

    def add_claims(self, claims: Sequence[Claim]) -> int:
        """Claim each name not yet claimed (a store's migration; idempotent); how many were new."""
        columns: list[list[str]] = [[c.name for c in claims], [c.value for c in claims], [c.owner for c in claims]]
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                psql.SQL(
                    "INSERT INTO {} SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]) ON CONFLICT DO NOTHING"
                ).format(self._claims()),
                columns,
            )
            return int(curs.rowcount)


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
                    _close_pool(shared.pool)
                    if _SHARED_POOLS.get(key) is shared:
                        del _SHARED_POOLS[key]

        datastore.close = give_back  # type: ignore[method-assign]


def _close_pool(pool: Any) -> None:
    """Close a pool, waiting for its threads; from one of those threads (a store dropped by the
    garbage collector while a pool thread ran: ``__del__`` closes it there) a thread cannot wait
    for itself, so another thread closes it."""
    if threading.current_thread().name.startswith(f"{pool.name}-"):
        threading.Thread(target=pool.close, name=f"{pool.name}-closer", daemon=True).start()
    else:
        pool.close()


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
