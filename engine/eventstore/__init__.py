"""The one seam to the event store: everything that touches eventsourcing's persistence, its
SQLite and PostgreSQL modules, psycopg or sqlite3 lives in this package, and nothing outside it
imports those (an import contract and ``tests/unit/test_architecture.py`` say so).

- ``saving``: batch saves with tracking, fresh reads, cache resets, the tuned recorders and the
  process's shared PostgreSQL pool, and what counts as the store being unreachable.
- ``coordination``: huoke's own tables, worker leases and heartbeats, the SQLite writer lock.
- ``vault``: the per-lead data keys (crypto-shredding) in their own store.

The persistence types the layers above name (a claim recorded with events, a tracking record, a
recorder in a signature, the integrity error a duplicate raises) are re-exported here.
"""

from __future__ import annotations

from eventsourcing.persistence import (
    ApplicationRecorder,
    InfrastructureFactory,
    IntegrityError,
    Mapper,
    Notification,
    ProcessRecorder,
    Tracking,
    TrackingRecorder,
)
from eventsourcing.postgres import PostgresTrackingRecorder
from eventsourcing.sqlite import SQLiteTrackingRecorder

from engine.eventstore.recorders import Claim

#: eventsourcing's PostgreSQL module (the ``PERSISTENCE_MODULE`` a PostgreSQL store names).
POSTGRES_MODULE = "eventsourcing.postgres"

__all__ = [
    "POSTGRES_MODULE",
    "ApplicationRecorder",
    "Claim",
    "InfrastructureFactory",
    "IntegrityError",
    "Mapper",
    "Notification",
    "PostgresTrackingRecorder",
    "ProcessRecorder",
    "SQLiteTrackingRecorder",
    "Tracking",
    "TrackingRecorder",
]
