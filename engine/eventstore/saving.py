"""The one module that uses eventsourcing beyond its public API: batch saves with one or more
tracking records, fresh reads that bypass a process's aggregate cache, cache resets, the tuned
recorders and tracking inserts for the views. ``tests/unit/test_eventsourcing_internals.py``
pins every internal used here against the locked eventsourcing version: an upgrade that moves
one fails there, by name, not somewhere in a worker.

``Application.save`` checks every object against a runtime Protocol, which costs more than
the insert itself on the hot paths (measured: ~30% of a capture batch); the aggregates here
are always huoke's own, so their pending events are collected directly.

Several tracking records in one transaction let a worker that owns several lead partitions
advance all of them with one commit (see ``engine.application.partitions``). The recorders
that accept them are below, chosen by bootstrap through ``PERSISTENCE_MODULE``. On PostgreSQL
the stores of one process share one connection pool (``SharedPoolPostgresFactory``).

SQLite connections use synchronous=NORMAL: in WAL mode that skips the fsync per commit (x2.5 on
single saves, LIBRARIES.md); a power cut can lose the last commits but never corrupts the file.
"""

from __future__ import annotations

import base64
import contextlib
import random
import threading
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import Application, LRUCache, ProcessingEvent, Repository
from eventsourcing.persistence import IntegrityError, Mapper, StoredEvent, Tracking
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.utils import get_topic
from psycopg import sql as psql

from engine.eventstore import compression, recorders
from engine.eventstore.recorders import Claim

#: Stores set up before the recorders had a module of their own name their factories here.
TunedSQLiteFactory = recorders.TunedSQLiteFactory
SharedPoolPostgresFactory = recorders.SharedPoolPostgresFactory

T = TypeVar("T")

#: A version no aggregate reaches: asking for it reads every stored event (never the cache).
_LATEST = 2**31


def save_batch(
    app: Application[Any],
    aggregates: Iterable[Any],
    tracking: Tracking | Sequence[Tracking] | None = None,
    claims: Sequence[Claim] = (),
) -> int:
    """Record every pending event of ``aggregates`` (and the tracking records and ``claims``)
    atomically; return the count. A tracking position already recorded, or a name already
    claimed, raises ``IntegrityError`` and writes nothing."""
    trackings = [tracking] if isinstance(tracking, Tracking) else list(tracking or ())
    pe: ProcessingEvent[UUID] = ProcessingEvent(tracking=trackings[0] if len(trackings) == 1 else None)
    if len(trackings) > 1 or claims:
        if not getattr(app.recorder, "accepts_many_trackings", False):
            raise TypeError(f"{type(app.recorder).__name__} cannot record tracking records or claims with events")
        if len(trackings) > 1:
            pe.saved_kwargs["trackings"] = trackings
        if claims:
            pe.saved_kwargs["claims"] = list(claims)
    for aggregate in aggregates:
        pe.events.extend(aggregate.collect_events())
        pe.aggregates[aggregate.id] = aggregate
    if not pe.events and not trackings and not claims:
        return 0
    recordings = app._record(pe)
    app._take_snapshots(pe)
    _cache_saved(app, pe.aggregates)
    recent = recent_events(app)
    if recent is not None:
        recent.remember(app.mapper, recordings)
    return len(pe.events)


def _cache_saved(app: Application[Any], aggregates: dict[UUID, Any]) -> None:
    """What the cache keeps of the aggregates just saved. One the application says is finished
    leaves it (eventsourcing's ``_record`` has just put it there): memory follows the work in
    flight, not every lead ever seen, and one is read from the store again if it is ever needed.
    The others go into a fast-forwarding cache too: ``_record`` puts them there only when the
    cache does not fast-forward, so each new lead was read back from the store by the next use
    case that needed it. What was just saved is current; should another process write it later,
    the next ``get`` fast-forwards it as it would any other."""
    cache = app.repository.cache
    if cache is None:
        return
    finished = getattr(app, "finished", None)
    for aggregate_id, aggregate in aggregates.items():
        if finished is not None and finished(aggregate):
            with contextlib.suppress(KeyError):
                cache.get(aggregate_id, evict=True)
        elif app.repository.fastforward:
            cache.put(aggregate_id, aggregate)


#: Where a stored event keeps its sealed personal fields (URL-safe base64 of nonce + ciphertext).
SEALED = "_sealed"


class SealingMapper(Mapper[UUID]):
    """A mapper that seals the personal fields of some events with their originator's own data
    key (``vault``, see ``engine.eventstore.vault``) before they are stored, and opens them when
    they are read — or, once the originator was erased, puts the placeholders in their place.
    The rest of each event stays as eventsourcing stores it."""

    def __init__(
        self,
        base: Mapper[UUID],
        vault: Any,
        fields: dict[str, dict[str, Any]],
        owners: dict[str, str | UUID] | None = None,
    ) -> None:
        super().__init__(base.transcoder, base.compressor, base.cipher)
        self.vault = vault
        self.fields = fields
        #: topic -> the field naming whose key seals it (default: the event's originator), or a
        #: fixed key's id (operators' notes are not the lead's data and outlive an erasure).
        self.owners = owners or {}

    def _owner(self, topic: str, state: dict[str, Any]) -> Any:
        owner = self.owners.get(topic, "originator_id")
        return owner if isinstance(owner, UUID) else state.get(owner)

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        topic = get_topic(type(domain_event))
        personal = self.fields.get(topic)
        if not personal:
            return super().to_stored_event(domain_event)
        state = dict(vars(domain_event))
        lead_id = self._owner(topic, state)
        if lead_id is None:  # nobody's key to seal it with (an event from before owners were named)
            return super().to_stored_event(domain_event)
        if not any(state.get(k) for k in personal):  # nothing personal in it (no links, say)
            return super().to_stored_event(domain_event)
        secret = {k: state.pop(k) for k in personal if k in state}
        # compressed before it is sealed (ciphertext does not compress), as the rest of the state is
        blob = self.vault.seal(lead_id, compression.compress(self.transcoder.encode(secret)), _aad(topic, lead_id))
        if blob is None:  # the lead was erased: its placeholders, never its data
            state.update({k: v for k, v in _placeholders(personal).items() if k in secret})
        else:
            state[SEALED] = base64.urlsafe_b64encode(blob).decode()
        proxy = object.__new__(type(domain_event))
        object.__setattr__(proxy, "__dict__", state)
        return super().to_stored_event(proxy)

    def shut(self, domain_event: Any) -> Any:
        """``domain_event`` as ``to_domain_event_unopened`` reads it back once stored: the
        placeholders in place of the personal fields it seals (the event itself when it seals
        none)."""
        topic = get_topic(type(domain_event))
        personal = self.fields.get(topic)
        if not personal:
            return domain_event
        state = vars(domain_event)
        if self._owner(topic, state) is None or not any(state.get(k) for k in personal):
            return domain_event  # stored as it is (see ``to_stored_event``)
        proxy = object.__new__(type(domain_event))
        object.__setattr__(proxy, "__dict__", {**state, **_placeholders(personal)})
        return proxy

    def warm(self, stored_events: Sequence[StoredEvent]) -> None:
        """Load the data keys of these events' leads in one go (instead of a query per lead)."""
        self.vault.warm(
            {UUID(str(n.originator_id)) for n in stored_events if n.topic in self.fields and n.topic not in self.owners}
        )

    def to_domain_event_unopened(self, stored_event: StoredEvent) -> Any:
        """The event with its personal fields' placeholders: nothing is decrypted."""
        event = super().to_domain_event(stored_event)
        state = vars(event)
        if state.pop(SEALED, None) is not None:
            state.update(_placeholders(self.fields.get(stored_event.topic, {})))
        return event

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        event = super().to_domain_event(stored_event)
        state = vars(event)
        sealed = state.pop(SEALED, None)
        if sealed is not None:
            personal = self.fields.get(stored_event.topic, {})
            lead_id = self._owner(stored_event.topic, state)
            opened = self.vault.open(lead_id, base64.urlsafe_b64decode(sealed), _aad(stored_event.topic, lead_id))
            if opened is None:
                state.update(_placeholders(personal))
            else:  # sealed before compression (older stores): read as it is
                state.update(self.transcoder.decode(compression.decompress(opened)))
        return event


def decode_page(
    mapper: Mapper[UUID],
    stored_events: Sequence[StoredEvent],
    personal: bool = True,
    recent: RecentEvents | None = None,
) -> list[Any]:
    """A page of stored events as domain events: a sealing mapper loads the page's keys first,
    or (``personal`` False: a reader that holds no personal data) leaves the sealed fields shut
    and puts their placeholders in, as for an erased lead. Such a reader takes the events this
    process saved from ``recent`` (by their notification ids) instead of decoding them again."""
    if not personal:
        shut = mapper.to_domain_event_unopened if isinstance(mapper, SealingMapper) else mapper.to_domain_event
        known = recent.events if recent is not None else {}
        return [e if (e := known.get(getattr(n, "id", 0))) is not None else shut(n) for n in stored_events]
    if isinstance(mapper, SealingMapper):
        mapper.warm(stored_events)
    return [mapper.to_domain_event(n) for n in stored_events]


class RecentEvents:
    """The last ``limit`` events this process saved to one log, by notification id, as a reader
    without personal data reads them back (``SealingMapper.shut``). The views of an engine that
    keeps them, and its followers that read no personal data (the journeys and the referrals
    following the leads log), read a page of the log and take what this process wrote from here
    instead of decoding it again; what another process wrote (an embedded engine's helper, an
    import) they decode. Each reader comes to an event at its own time in the loop (a follower
    in the next pass, the views in this one), so the oldest are dropped, not the ones read."""

    def __init__(self, limit: int = 5_000) -> None:
        self.limit = limit
        self.events: dict[int, Any] = {}
        self._lock = threading.Lock()  # threads of one process (huoke serve's) save at once

    def remember(self, mapper: Mapper[UUID], recordings: Sequence[Any]) -> None:
        shut = mapper.shut if isinstance(mapper, SealingMapper) else None
        with self._lock:
            events = self.events
            for r in recordings:
                events[r.notification.id] = r.domain_event if shut is None else shut(r.domain_event)
            while len(events) > self.limit:
                del events[next(iter(events))]  # the oldest first


def recent_events(app: Application[Any]) -> RecentEvents | None:
    """The events ``app`` saved lately, if this process keeps them (``keep_recent_events``)."""
    return getattr(app, "_recent_events", None)


def keep_recent_events(app: Application[Any]) -> RecentEvents:
    """From now on ``app`` keeps the events it saves for its views to read (see ``RecentEvents``)."""
    recent = recent_events(app)
    if recent is None:
        recent = app._recent_events = RecentEvents()  # type: ignore[attr-defined]
    return recent


def sealing_mapper(
    base: Mapper[UUID],
    vault: Any,
    personal: dict[type[Any], dict[str, Any]],
    owner: str | None = None,
    owners: dict[type[Any], UUID] | None = None,
) -> Mapper[UUID]:
    """``base``, sealing the ``personal`` fields of those event classes when there is a vault;
    ``owner`` names the field holding the lead whose key seals them (default: the originator);
    ``owners`` gives event classes sealed under a fixed key instead."""
    if vault is None:
        return base
    topics = {get_topic(cls): fields for cls, fields in personal.items()}
    by_topic: dict[str, str | UUID] = dict.fromkeys(topics, owner) if owner else {}
    by_topic.update({get_topic(cls): key for cls, key in (owners or {}).items()})
    return SealingMapper(base, vault, topics, by_topic)


def _aad(topic: str, originator_id: Any) -> bytes:
    """What a sealed field is bound to: it cannot be moved to another event kind or lead."""
    return f"{topic}|{originator_id}".encode()


def _placeholders(personal: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.copy() if isinstance(v, dict | list) else v) for k, v in personal.items()}


def copy_aggregates(source: Application[Any], target: Application[Any], aggregate_ids: Iterable[UUID]) -> int:
    """Copy the stored events of these aggregates, exactly as stored, from one store into another
    (a sandbox gets the lender's model registry this way); the number copied."""
    events = [e for i in aggregate_ids for e in source.recorder.select_events(i)]
    if events:
        target.recorder.insert_events(events)
    return len(events)


def delete_snapshots(app: Application[Any], aggregate_id: UUID) -> None:
    """Forget an aggregate's snapshots (they hold its whole state, personal data included)."""
    recorder: Any = app.snapshots.recorder if app.snapshots is not None else None
    if recorder is None:
        return
    table = recorder.events_table_name
    with recorder.datastore.transaction(commit=True) as c:
        if isinstance(recorder, PostgresApplicationRecorder):
            statement = psql.SQL("DELETE FROM {}.{} WHERE originator_id = %s")
            c.execute(
                statement.format(psql.Identifier(recorder.datastore.schema), psql.Identifier(table)), (aggregate_id,)
            )
        else:
            c.execute(f"DELETE FROM {table} WHERE originator_id = ?", (str(aggregate_id),))  # noqa: S608 - own table


def fresh_get(app: Application[Any], aggregate_id: UUID) -> Any:
    """The aggregate as committed now, whatever this process cached (another process may have
    written it). Raises ``AggregateNotFoundError`` like ``repository.get``."""
    aggregate: Any = app.repository.get(aggregate_id, version=_LATEST)
    cache = app.repository.cache
    if cache is not None:
        cache.put(aggregate_id, aggregate)
    return aggregate


def as_uuid(value: Any) -> UUID:
    """``value`` as a UUID: itself when it is one, else parsed from its text (a view's row)."""
    return value if isinstance(value, UUID) else UUID(str(value))


def _of_ids(recorder: Any, columns: str, aggregate_ids: Collection[Any], tail: str) -> tuple[str, tuple[Any, ...]]:
    """A query of ``columns`` over the stored events of ``aggregate_ids`` (then ``tail``) and its
    parameters, in the recorder's dialect."""
    if isinstance(recorder, PostgresApplicationRecorder):
        table = f'"{recorder.datastore.schema}"."{recorder.events_table_name}"'
        query = f"SELECT {columns} FROM {table} WHERE originator_id = ANY(%s) {tail}"  # noqa: S608 - own table
        return query, ([as_uuid(i) for i in aggregate_ids],)
    marks = ", ".join("?" for _ in aggregate_ids)
    query = f"SELECT {columns} FROM {recorder.events_table_name} WHERE originator_id IN ({marks}) {tail}"  # noqa: S608
    return query, tuple(as_uuid(i).hex for i in aggregate_ids)  # SQLite stores ids as hex text


def latest_versions(app: Application[Any], aggregate_ids: Collection[UUID]) -> dict[UUID, int]:
    """The version each aggregate has in the store now, in one query (the check that proves a
    cached aggregate current; an id with no events is absent)."""
    if not aggregate_ids:
        return {}
    recorder: Any = app.recorder
    ids = sorted({as_uuid(i) for i in aggregate_ids})
    query, params = _of_ids(recorder, "originator_id, MAX(originator_version) AS v", ids, "GROUP BY originator_id")
    with recorder.datastore.transaction(commit=False) as cursor:
        cursor.execute(query, params)
        return {as_uuid(row["originator_id"]): int(row["v"]) for row in cursor.fetchall()}


def current_aggregates(app: Application[Any], aggregate_ids: Collection[UUID]) -> dict[UUID, Any]:
    """Aggregates as committed now, for a batch: a cached aggregate is used when one version
    query proves it current, a stale one is brought up to date, and those not cached are read
    together (one query). Missing ids are left out."""
    versions = latest_versions(app, aggregate_ids)
    cache = app.repository.cache
    found: dict[UUID, Any] = {}
    uncached: list[UUID] = []
    for aggregate_id, version in versions.items():
        cached = None
        if cache is not None:
            try:
                cached = cache.get(aggregate_id)
            except KeyError:
                uncached.append(aggregate_id)
                continue
        if cached is not None and cached.version == version:
            found[aggregate_id] = cached
        else:  # a fast-forwarding cache catches up in one read; any other is bypassed
            found[aggregate_id] = (
                app.repository.get(aggregate_id) if app.repository.fastforward else fresh_get(app, aggregate_id)
            )
    found.update(_read_into_cache(app, uncached))
    return found


def warm_cache(app: Application[Any], aggregate_ids: Iterable[UUID]) -> None:
    """Put into ``app``'s aggregate cache each of ``aggregate_ids`` it does not hold, read
    together (one query) instead of one read each when they are next asked for. Only for a
    cache whose aggregates have one writer (this process): a cached one is taken as current."""
    cache = app.repository.cache
    if cache is None:
        return
    wanted = []
    for aggregate_id in dict.fromkeys(aggregate_ids):
        try:
            cache.get(aggregate_id)
        except KeyError:
            wanted.append(aggregate_id)
    _read_into_cache(app, wanted)


def _read_into_cache(app: Application[Any], aggregate_ids: Collection[UUID]) -> dict[UUID, Any]:
    """``read_aggregates``, each one read also put into ``app``'s aggregate cache."""
    read = read_aggregates(app, aggregate_ids)
    cache = app.repository.cache
    if cache is not None:
        for aggregate_id, aggregate in read.items():
            cache.put(aggregate_id, aggregate)
    return read


def read_aggregates(app: Application[Any], aggregate_ids: Collection[UUID]) -> dict[UUID, Any]:
    """Aggregates rebuilt from all their stored events, read together (one query for each 500
    ids), their personal fields opened with their keys loaded at once. Ids without events are
    left out."""
    ids = list(aggregate_ids)
    stored: list[StoredEvent] = []
    for start in range(0, len(ids), _READ_TOGETHER):
        stored += _events_of(app, ids[start : start + _READ_TOGETHER])
    by_id: dict[UUID, Any] = {}
    for event in decode_page(app.mapper, stored):
        by_id[event.originator_id] = event.mutate(by_id.get(event.originator_id))
    return {aggregate_id: aggregate for aggregate_id, aggregate in by_id.items() if aggregate is not None}


#: Ids a query of ``read_aggregates`` names at most (well within SQLite's limit of variables).
_READ_TOGETHER = 500


def _events_of(app: Application[Any], aggregate_ids: Sequence[UUID]) -> list[StoredEvent]:
    """Every stored event of ``aggregate_ids``, by aggregate and version, in one query."""
    if not aggregate_ids:
        return []
    recorder: Any = app.recorder
    columns = "originator_id, originator_version, topic, state"
    query, params = _of_ids(recorder, columns, aggregate_ids, "ORDER BY originator_id, originator_version")
    with recorder.datastore.transaction(commit=False) as cursor:
        cursor.execute(query, params)
        return [
            StoredEvent(as_uuid(row["originator_id"]), row["originator_version"], row["topic"], bytes(row["state"]))
            for row in cursor.fetchall()
        ]


def mutate_each(aggregate: Any, domain_events: Iterable[Any]) -> Any:
    """eventsourcing's ``project_aggregate`` without its ``assert isinstance`` of each event
    against a runtime-checkable Protocol: ``typing`` walks the Protocol's members on every
    check, a third of rebuilding an aggregate (huoke's events are all eventsourcing's own)."""
    for domain_event in domain_events:
        aggregate = domain_event.mutate(aggregate)
    return aggregate


class MutatingRepository(Repository[UUID]):
    """eventsourcing's repository, rebuilding aggregates with ``mutate_each``."""

    def get(
        self,
        aggregate_id: UUID,
        *,
        version: int | None = None,
        projector_func: Callable[[Any, Iterable[Any]], Any] = mutate_each,
        fastforward_skipping: bool = False,
        deepcopy_from_cache: bool = True,
    ) -> Any:
        return super().get(
            aggregate_id,
            version=version,
            projector_func=projector_func,
            fastforward_skipping=fastforward_skipping,
            deepcopy_from_cache=deepcopy_from_cache,
        )


def construct_repository(app: Application[Any]) -> Repository[UUID]:
    """``app``'s repository as ``Application.construct_repository`` builds it from its settings
    (cache size, fast-forwarding, deep copies), as a ``MutatingRepository``; its cache is a
    ``ShareCache`` if the application was given its share (``cache_share``)."""
    built = Application.construct_repository(app)
    maxsize = app.env.get(app.AGGREGATE_CACHE_MAXSIZE)
    repository = MutatingRepository(
        event_store=built.event_store,
        snapshot_store=built.snapshot_store,
        cache_maxsize=int(maxsize) if maxsize else None,
        fastforward=built.fastforward,
        fastforward_skipping=built.fastforward_skipping,
        deepcopy_from_cache=built.deepcopy_from_cache,
    )
    share: Callable[[UUID], bool] | None = getattr(app, "_cache_share", None)
    if share is not None and isinstance(repository.cache, LRUCache):
        repository.cache = ShareCache(repository.cache.maxsize, share)
    return repository


#: How many aggregates outside its share a ``ShareCache`` keeps (least recently used first out).
OTHERS_CACHED = 5_000


class ShareCache(LRUCache[UUID, Any]):
    """An aggregate cache for a process that shares its aggregates with another: up to
    ``maxsize`` of its own share (``ours``), and the last ``OTHERS_CACHED`` it used of the
    others', which the other process caches. Two processes that each cached every aggregate
    they touched would each end up holding most of them."""

    def __init__(self, maxsize: int, ours: Callable[[UUID], bool]) -> None:
        super().__init__(maxsize)
        self.ours = ours
        self.others: LRUCache[UUID, Any] = LRUCache(min(maxsize, OTHERS_CACHED))

    def get(self, key: UUID, *, evict: bool = False) -> Any:
        if self.ours(key):
            return super().get(key, evict=evict)
        return self.others.get(key, evict=evict)

    def put(self, key: UUID, value: Any) -> Any:
        if self.ours(key):
            return super().put(key, value)
        return self.others.put(key, value)


def cache_share(app: Application[Any], ours: Callable[[UUID], bool]) -> None:
    """From now on ``app`` caches mostly ``ours`` of its aggregates (see ``ShareCache``); what it
    held is dropped."""
    app._cache_share = ours  # type: ignore[attr-defined]
    forget_cache(app)


def claimed(app: Application[Any], names: Collection[str]) -> dict[str, str]:
    """What each of ``names`` that is claimed in ``app``'s store names (see ``save_batch``)."""
    return app.recorder.select_claims(names) if names else {}  # type: ignore[attr-defined]


def owned_claims(app: Application[Any], owners: Collection[str]) -> list[Claim]:
    """The claims of each of ``owners`` in ``app``'s store, in the order of their names."""
    return app.recorder.select_owned_claims(owners) if owners else []  # type: ignore[attr-defined]


def add_claims(app: Application[Any], claims: Sequence[Claim]) -> int:
    """Claim in ``app``'s store each name not claimed yet (migrations; idempotent): how many."""
    return app.recorder.add_claims(claims) if claims else 0  # type: ignore[attr-defined]


def forget_cache(app: Application[Any]) -> None:
    """Drop every cached aggregate (after a failed batch their state may be unsaved, or after
    another process took over some of this process's work)."""
    app._repository = app.construct_repository()


#: Tries of a unit of work that meets a concurrency conflict before the conflict propagates.
#: Each try reads again; a conflict comes from another process writing one of its aggregates
#: meanwhile, and a page of a worker's follower touches many leads while ``huoke serve`` records
#: one person's opt-out or click after another: five tries without a pause between them were
#: once all lost to such a burst in a live topology (its worker logged a failed tick).
CONFLICT_ATTEMPTS = 10


def conflict_pause(attempt: int) -> float:
    """Seconds to wait before try ``attempt + 2``: random (two processes that conflicted do not
    retry in step) up to 5 ms, doubling, at most 200 ms; about a second in all over every try."""
    return random.uniform(0, min(0.2, 0.005 * 2**attempt))


def retry_conflicts(
    app: Application[Any],
    work: Callable[[], T],
    forget: Callable[[], None] | None = None,
    attempts: int = CONFLICT_ATTEMPTS,
) -> T:
    """Run ``work`` (load → decide → save) again after a concurrency conflict: another process
    wrote one of its aggregates first (after a short pause, see ``conflict_pause``). Any other
    failure drops the cache and propagates."""
    drop = forget or (lambda: forget_cache(app))
    for attempt in range(attempts):
        try:
            return work()
        except IntegrityError:
            drop()
            if attempt + 1 == attempts:
                raise
            time.sleep(conflict_pause(attempt))
        except Exception:
            drop()
            raise
    raise AssertionError("unreachable")  # pragma: no cover


#: What SQLite says when the file cannot be written or read now (a full or read-only disk, a
#: vanished folder, a lock held too long), as opposed to a mistake in a statement.
_SQLITE_TRANSIENT = ("readonly", "read-only", "disk i/o", "unable to open", "locked", "disk is full", "busy")


def store_unreachable(error: BaseException) -> bool:
    """Whether ``error`` says the store does not answer (or cannot record) right now: a lost or
    refused PostgreSQL connection, a pool that gave up waiting for one, a SQLite file that cannot
    be written. Such an error is waited out and retried; it never stops a long-running process
    and never shows a user a traceback."""
    import sqlite3

    import psycopg
    from eventsourcing.persistence import InterfaceError as StoreInterfaceError
    from eventsourcing.persistence import OperationalError as StoreOperationalError

    seen: set[int] = set()
    e: BaseException | None = error
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, sqlite3.OperationalError):
            return any(word in str(e).lower() for word in _SQLITE_TRANSIENT)
        if isinstance(e, psycopg.OperationalError | psycopg.InterfaceError):
            return True
        nxt = e.__cause__ or e.__context__
        if isinstance(e, StoreOperationalError | StoreInterfaceError) and nxt is None:
            return True  # eventsourcing's own, raised without the driver's error behind it
        e = nxt
    return False
