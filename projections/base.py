"""Shared machinery for read models: one SQL dialect layer, batched exactly-once apply.

A view is a TrackingRecorder (SQLite or PostgreSQL) that owns a few tables. Each batch of
events is applied in one transaction together with the tracking record of its last
notification, so each event is applied exactly once, and a rebuild starts from nothing.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from decimal import ROUND_HALF_EVEN, Decimal
from functools import cache, singledispatchmethod
from typing import Any, ClassVar

from eventsourcing.projection import Projection

from engine.application.partitions import Partitions
from engine.eventstore import PostgresTrackingRecorder, SQLiteTrackingRecorder, Tracking, TrackingRecorder
from engine.eventstore.recorders import record_tracking

#: Qualified statements a view remembers (beyond it, it starts over).
QUALIFIED_KEPT = 2048


@cache
def _handler(view: type, event: type) -> Callable[[Any, Any, Any], None]:
    """The function ``view.apply`` dispatches ``event`` to, looked up once: in Python 3.11 each
    ``self.apply`` of a ``singledispatchmethod`` builds and wraps a new function (6 µs; half a
    million a run of 40,000 leads' first day)."""
    for klass in view.__mro__:
        apply = klass.__dict__.get("apply")
        if isinstance(apply, singledispatchmethod):
            return apply.dispatcher.dispatch(event)
        if apply is not None:
            return apply  # type: ignore[no-any-return]
    raise TypeError(f"{view.__name__} has no apply")


class Tally:
    """Additions to a view's counter rows made while a batch is applied: summed per row and
    written at the end of the batch, once per row (a batch adding to the same few rows
    thousands of times writes each once), in key order (concurrent writers meet rows in the
    same order)."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[tuple[Any, ...], list[Any]]] = {}

    def add(self, table: str, key: tuple[Any, ...], deltas: Sequence[Any]) -> None:
        row = self.rows.setdefault(table, {}).get(key)
        if row is None:
            self.rows[table][key] = list(deltas)
        else:
            for i, d in enumerate(deltas):
                row[i] += d


class SqlView(TrackingRecorder):
    """Mixin for views; subclasses write SQL with {t_<table>} names and ? parameters."""

    tables: Sequence[str] = ()
    #: Raised when a view's tables change: db init then forgets the view (rows and tracking),
    #: and it is rebuilt from the log on its next catch-up.
    schema_version: int = 1
    #: (engine attribute of a log, topics read from it) for each log the view follows
    feeds: Sequence[tuple[str, Sequence[str]]] = ()
    #: Counter tables: table -> (key columns, columns added to); see ``count``.
    counters: ClassVar[dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {}
    #: Counter columns holding money, stored as whole hundredths of the currency unit (fen,
    #: cents) in integer columns: sums stay exact in both dialects (SQLite's NUMERIC keeps a
    #: fraction as a binary float). ``amount_of`` reads one back.
    money: frozenset[str] = frozenset()
    #: Whether the view reads personal fields sealed in events (then they are decrypted for it);
    #: without, it gets their placeholders, as for an erased lead: views hold no personal data.
    personal: bool = False

    @property
    def is_postgres(self) -> bool:
        return isinstance(self, PostgresTrackingRecorder)

    def q(self, sql: str) -> str:
        """Qualify table names and convert parameter markers for this dialect (remembered: a
        view runs the same few statements for every event)."""
        known: dict[str, str] = self.__dict__.setdefault("_qualified", {})
        done = known.get(sql)
        if done is None:
            if len(known) >= QUALIFIED_KEPT:  # statements built with varying IN lists
                known.clear()
            done = known[sql] = self._qualify(sql)
        return done

    def _qualify(self, sql: str) -> str:
        names = {}
        for t in self.tables:
            names[f"t_{t}"] = f'"{self.datastore.schema}"."{t}"' if self.is_postgres else t  # type: ignore[attr-defined]
        sql = sql.format(**names)
        return sql.replace("%", "%%").replace("?", "%s") if self.is_postgres else sql

    @abstractmethod
    def ddl(self) -> list[str]:
        """CREATE TABLE / INDEX statements (IF NOT EXISTS)."""

    @abstractmethod
    def apply(self, event: Any, cursor: Any) -> None:
        """Update the tables for one event (inside the batch transaction)."""

    def create_table(self) -> None:
        super().create_table()  # type: ignore[misc]  # the concrete recorder is mixed in
        with self.transaction() as c:
            for statement in self.ddl():
                c.execute(self.q(statement))
        if self._stored_version() < self.schema_version:
            self.reset()
        with self.transaction() as c:
            c.execute(self._version_table("DELETE FROM {}"))
            c.execute(self._version_table("INSERT INTO {} VALUES (?)"), (self.schema_version,))

    def _version_table(self, sql: str) -> str:
        name = f"{self.tables[0]}_schema_version"
        table = f'"{self.datastore.schema}"."{name}"' if self.is_postgres else name  # type: ignore[attr-defined]
        sql = sql.format(table)
        return sql.replace("?", "%s") if self.is_postgres else sql

    def _stored_version(self) -> int:
        """The version of this view's tables as stored (1 for stores from before versions)."""
        with self.transaction() as c:
            c.execute(self._version_table("CREATE TABLE IF NOT EXISTS {} (version INTEGER NOT NULL)"))
            c.execute(self._version_table("SELECT MAX(version) AS v FROM {}"))
            row = c.fetchone()
        value = dict(row)["v"] if row is not None else None
        return int(value) if value is not None else 1

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        with self.datastore.transaction(commit=True) as c:  # type: ignore[attr-defined]
            yield c

    def apply_batch(self, events: Sequence[Any], tracking: Tracking) -> None:
        """Apply events and record ``tracking`` atomically; a replayed position is refused."""
        with self.transaction() as c, self._pipelined(c):
            record_tracking(self, c, tracking)
            tallies = self.__dict__.setdefault("_tallies", {})
            tallies[id(c)] = Tally()
            try:
                for event in events:
                    self.apply_one(event, c)
                self._write_tally(c, tallies[id(c)])
            finally:
                del tallies[id(c)]

    def apply_one(self, event: Any, cursor: Any) -> None:
        """``apply``, its handler for the event's class looked up once (see ``_handler``)."""
        kind: type = type(event)
        _handler(type(self), kind)(self, event, cursor)

    def _pipelined(self, c: Any) -> AbstractContextManager[Any]:
        """On PostgreSQL, a batch's statements go out in pipeline mode: each is sent without
        waiting for the one before to answer (a view reading a row waits for that answer only),
        so a batch costs a few round trips to the server instead of one a statement."""
        return c.connection.pipeline() if self.is_postgres else nullcontext()

    def count(self, c: Any, table: str, key: Sequence[Any], deltas: Sequence[Any]) -> None:
        """Add ``deltas`` to the counter row ``key`` of ``table`` (written when the batch ends)."""
        self.__dict__["_tallies"][id(c)].add(table, tuple(key), deltas)

    def _write_tally(self, c: Any, tally: Tally) -> None:
        for table, rows in sorted(tally.rows.items()):
            keys, values = self.counters[table]
            marks = ", ".join("?" for _ in (*keys, *values))
            sets = ", ".join(f"{v} = {{t_{table}}}.{v} + excluded.{v}" for v in values)
            statement = self.q(
                f"INSERT INTO {{t_{table}}} ({', '.join((*keys, *values))}) VALUES ({marks}) "  # noqa: S608
                f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {sets}"
            )
            money = [v in self.money for v in values]
            # Every row touched is written, a sum of nothing included: the rows are the same
            # however the events were batched (applied live or in a rebuild).
            c.executemany(
                statement,
                [
                    (*key, *(self._amount(d) if m else d for d, m in zip(deltas, money, strict=True)))
                    for key, deltas in sorted(rows.items())
                ],
            )

    def _amount(self, value: Any) -> int:
        """A money amount as its column keeps it: whole hundredths (half-even)."""
        return int((Decimal(str(value)) * HUNDREDTHS).to_integral_value(rounding=ROUND_HALF_EVEN))

    def close(self) -> None:
        self.datastore.close()  # type: ignore[attr-defined]

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self.datastore.transaction(commit=False) as c:  # type: ignore[attr-defined]
            c.execute(self.q(sql), tuple(params))
            return [dict(r) for r in c.fetchall()]

    #: How many times this view object was reset (a reader that remembers where the view stood
    #: knows to look again).
    resets: int = 0

    def reset(self) -> None:
        """Forget everything, tracking included, in one transaction (for a rebuild)."""
        self.resets += 1
        tracking = (
            f'"{self.datastore.schema}"."{self.tracking_table_name}"'  # type: ignore[attr-defined]
            if self.is_postgres
            else "tracking"
        )
        with self.transaction() as c:
            for t in self.tables:
                c.execute(self.q(f"DELETE FROM {{t_{t}}}"))  # noqa: S608 - fixed table names
            c.execute(f"DELETE FROM {tracking} WHERE application_name <> '__migration__'")  # noqa: S608


def partition_filter(parts: Partitions, column: str = "bucket") -> tuple[str, tuple[int, ...]]:
    """An ``AND …`` clause keeping rows of the owned partitions (by their bucket ``column``)."""
    if parts.everything:
        return "", ()
    if not parts.owned:
        return " AND 1 = 0", ()
    marks = ", ".join("?" for _ in parts.owned)
    return f" AND {column} % ? IN ({marks})", (parts.count, *sorted(parts.owned))


class ViewProjection(Projection[Any]):
    """An eventsourcing Projection that hands each event to its SqlView (for the runners)."""

    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        self.view.apply_batch([domain_event], tracking)

    def process_events(self, batch: Sequence[tuple[Any, Tracking]]) -> None:
        """Apply events in one transaction with the last one's tracking record."""
        self.view.apply_batch([e for e, _ in batch], batch[-1][1])


def sqlite_and_postgres(mixin: type[Any]) -> tuple[type[Any], type[Any]]:
    """The concrete SQLite and PostgreSQL classes of a view mixin."""
    attrs = {"__module__": mixin.__module__}
    lite = type(f"{mixin.__name__}SQLite", (mixin, SQLiteTrackingRecorder), attrs)
    pg = type(f"{mixin.__name__}Postgres", (mixin, PostgresTrackingRecorder), attrs)
    return lite, pg


#: Money columns keep hundredths of the currency unit.
HUNDREDTHS = 100


def amount_of(stored: Any) -> Decimal:
    """A money column's value (a sum of hundredths, an int or a NUMERIC) in currency units."""
    return Decimal(str(stored or 0)) / HUNDREDTHS
