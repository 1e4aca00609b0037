"""eventsourcing's SQLite persistence with synchronous=NORMAL on every connection.

In WAL mode NORMAL skips the fsync per commit (×2.5 on single saves, LIBRARIES.md): a power
cut can lose the last commits but never corrupts the file. Chosen by
PERSISTENCE_MODULE=engine.adapters.sqlite_store:TunedSQLiteFactory in embedded mode.
"""

from __future__ import annotations

from typing import Any

from eventsourcing.sqlite import SQLiteConnection, SQLiteConnectionPool, SQLiteFactory


class TunedSQLiteConnectionPool(SQLiteConnectionPool):
    """Connection pool whose file connections use synchronous=NORMAL."""

    def _create_connection(self) -> SQLiteConnection:
        connection = super()._create_connection()
        if not self.is_sqlite_memory_mode:
            connection._sqlite_conn.execute("PRAGMA synchronous=NORMAL")
        return connection


class TunedSQLiteFactory(SQLiteFactory):
    """SQLiteFactory using the tuned pool."""

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        old = self.datastore.pool
        self.datastore.pool = TunedSQLiteConnectionPool(db_name=old.db_name, lock_timeout=old.lock_timeout)
