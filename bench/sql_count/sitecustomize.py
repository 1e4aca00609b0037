"""Counts the SQL a benchmarked huoke process sends to PostgreSQL (``make bench`` puts this folder
on the worker processes' PYTHONPATH and names a file in HUOKE_BENCH_SQL_COUNT).

Client side, because the server's per-statement counts need pg_stat_statements, a preloaded
library this machine's PostgreSQL does not have. A statement is one execution: ``executemany``
counts one per row it runs. Written to the file when the process exits (workers stop on SIGTERM
and exit normally)."""

from __future__ import annotations

import atexit
import json
import os
from typing import Any

TARGET = os.environ.get("HUOKE_BENCH_SQL_COUNT")

if TARGET:
    import psycopg

    counts = {"statements": 0, "commits": 0}
    _execute, _executemany, _commit = psycopg.Cursor.execute, psycopg.Cursor.executemany, psycopg.Connection.commit

    def execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        counts["statements"] += 1
        return _execute(self, query, *args, **kwargs)

    def executemany(self: Any, query: Any, params_seq: Any, *args: Any, **kwargs: Any) -> Any:
        rows = list(params_seq)
        counts["statements"] += len(rows)
        return _executemany(self, query, rows, *args, **kwargs)

    def commit(self: Any) -> Any:
        counts["commits"] += 1
        return _commit(self)

    psycopg.Cursor.execute = execute  # type: ignore[method-assign]
    psycopg.Cursor.executemany = executemany  # type: ignore[method-assign]
    psycopg.Connection.commit = commit  # type: ignore[method-assign]

    @atexit.register
    def _write() -> None:
        with open(f"{TARGET}.{os.getpid()}", "w", encoding="utf-8") as f:
            json.dump(counts, f)
