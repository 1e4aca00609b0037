"""eventsourcing's PostgreSQL process recorder, able to record several tracking records (one per
lead partition a worker owns) in the same transaction as a batch of events.

Chosen by PROCESS_RECORDER_TOPIC=engine.adapters.postgres_store:ManyTrackingPostgresProcessRecorder.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import StoredEvent, Tracking
from eventsourcing.postgres import PostgresProcessRecorder
from psycopg import Cursor
from psycopg.rows import DictRow


class ManyTrackingPostgresProcessRecorder(PostgresProcessRecorder):
    """Also records ``trackings=[...]`` in the events' transaction."""

    accepts_many_trackings = True

    def _insert_events(self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any) -> None:
        trackings: Sequence[Tracking] = kwargs.get("trackings", ())
        for tracking in trackings:
            self._insert_tracking(curs, tracking)
        super()._insert_events(curs, stored_events, **kwargs)
