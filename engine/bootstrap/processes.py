"""What a long-running process holds and reports: its lease (on SQLite the single-writer file
lock, on PostgreSQL its share of the lead partitions and maybe the views), and the status of the
processes and views as ``huoke status`` and monitoring read it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from engine.application.engine import VIEW_NAMES, Engine, RunReport
from engine.application.partitions import Partitions
from engine.bootstrap import meta_for
from engine.eventstore.leases import FileLease, PostgresLeases
from engine.eventstore.saving import forget_cache
from engine.settings import Settings


class Lease:
    """What a writing process holds: on SQLite the single-writer file lock, on PostgreSQL its
    share of the lead partitions (and maybe the views)."""

    def __init__(self, s: Settings, engine: Engine, one_off: bool) -> None:
        self.engine = engine
        self.settings = s
        self.file: FileLease | None = None
        self.pg: PostgresLeases | None = None
        self.one_off = one_off
        meta = meta_for(s)
        if meta.pg is None:
            self.file = FileLease(s.data_dir)  # AlreadyRunningError: another writer runs
            engine.owns_views = True
            return
        self.pg = PostgresLeases(meta, engine.parts.count, s.worker_advances_views, VIEW_NAMES)
        engine.owns_views = False
        if one_off:
            self.pg.take_free()
            self._apply(gained=True)

    def rebalance(self) -> None:
        if self.pg is not None and not self.one_off:
            self._apply(self.pg.rebalance())

    def _apply(self, gained: bool) -> None:
        every = range(self.engine.parts.count)
        owned, views = (self.pg.owned, self.pg.views) if self.pg is not None else (every, VIEW_NAMES)
        self.engine.parts = Partitions(self.engine.parts.count, frozenset(owned))
        self.engine.views_owned = frozenset(views)
        if gained:  # another worker may have written these partitions' aggregates meanwhile
            forget_cache(self.engine.deliveries)
            self.engine.journeys.forget_cached_state()

    def heartbeat(self, report: RunReport, started: datetime) -> None:
        summary = " · ".join(f"{k} {v}" for k, v in report.as_dict().items() if v) or "idle"
        if self.pg is not None:
            self.pg.heartbeat(summary)
        else:
            meta_for(self.settings).report_sqlite("worker", started, self.engine.parts.describe(), summary)

    def close(self) -> None:
        if self.pg is not None:
            self.pg.close()
        if self.file is not None:
            self.file.close()


def status_document(s: Settings, engine: Engine) -> dict[str, Any]:
    """Each view's lag behind its logs, each worker's last tick and share, pending timers and
    held messages."""
    from projections.runners import view_lags

    lags = view_lags(engine)
    workers = meta_for(s).workers()
    return {
        "schema": "huoke.status/1",
        "store": "postgresql" if s.database_url else "sqlite",
        "partitions": engine.parts.count,
        "views": lags,
        "workers": workers,
        "pending_timers": engine.index.pending_count(),
        "held_messages": engine.schedule.held_count(),
        "next_timer": engine.index.next_due(),
    }
