"""Pins every eventsourcing internal huoke uses (all of them in engine/eventstore/saving.py and
recorders.py) against the locked version: an upgrade that moves one fails here, by name."""

from __future__ import annotations

import importlib.metadata
import inspect
import re
import sqlite3
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from uuid import uuid4

import psycopg
import pytest
import zstandard
from eventsourcing.application import Application, LRUCache, ProcessingEvent, Repository, project_aggregate
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import IntegrityError, StoredEvent, Tracking
from eventsourcing.postgres import PostgresDatastore, PostgresFactory, PostgresProcessRecorder
from eventsourcing.sqlite import SQLiteConnection, SQLiteConnectionPool, SQLiteProcessRecorder
from eventsourcing.utils import Environment

from engine.eventstore import Claim, compression, recorders, saving
from engine.settings import Settings
from tests.conftest import POSTGRES_URL
from tests.helpers import ROOT


def test_the_installed_eventsourcing_is_the_locked_one() -> None:
    locked = re.search(r"^eventsourcing==(\S+)$", (ROOT / "requirements.lock").read_text(), re.M)
    assert locked is not None
    assert importlib.metadata.version("eventsourcing") == locked.group(1)


#: What ``saving.construct_repository`` builds a repository with, as eventsourcing's does.
REPOSITORY_SETTINGS = (
    "self",
    "event_store",
    "snapshot_store",
    "cache_maxsize",
    "fastforward",
    "fastforward_skipping",
    "deepcopy_from_cache",
)


@pytest.mark.parametrize(
    ("owner", "name", "parameters"),
    [
        (Application, "_record", ["self", "processing_event"]),
        (Application, "_take_snapshots", ["self", "processing_event"]),
        (Application, "construct_repository", ["self"]),
        (SQLiteProcessRecorder, "_insert_tracking", ["self", "c", "tracking"]),
        (SQLiteProcessRecorder, "_insert_events", ["self", "c", "stored_events", "kwargs"]),
        (PostgresProcessRecorder, "_insert_tracking", ["self", "curs", "tracking"]),
        (PostgresProcessRecorder, "_insert_events", ["self", "curs", "stored_events", "kwargs"]),
        (SQLiteConnectionPool, "_create_connection", ["self"]),
        (
            Repository,
            "get",
            ["self", "aggregate_id", "version", "projector_func", "fastforward_skipping", "deepcopy_from_cache"],
        ),
        (Repository, "__init__", [*REPOSITORY_SETTINGS]),
        (SQLiteProcessRecorder, "convert_originator_id", ["self", "originator_id"]),
        (LRUCache, "get", ["self", "key", "evict"]),
        (LRUCache, "put", ["self", "key", "value"]),
    ],
)
def test_each_internal_method_is_there_with_the_signature_used(owner: type, name: str, parameters: list[str]) -> None:
    assert list(inspect.signature(getattr(owner, name)).parameters) == parameters


def test_stores_rebuild_aggregates_without_the_per_event_protocol_check(tmp_path: Path) -> None:
    """eventsourcing's projector checks every event against a runtime Protocol (the reason for
    ``mutate_each``); huoke's repositories keep every setting of the one eventsourcing builds."""
    assert "isinstance(domain_event, CanMutateProtocol)" in inspect.getsource(project_aggregate)
    app = _app(tmp_path, AGGREGATE_CACHE_MAXSIZE="7", AGGREGATE_CACHE_FASTFORWARD="n")
    repository = saving.construct_repository(app)
    assert isinstance(repository, saving.MutatingRepository) and not repository.fastforward
    assert isinstance(repository.cache, LRUCache) and repository.cache.maxsize == 7
    counter = Counter()
    counter.count()
    saving.save_batch(app, [counter])
    assert repository.get(counter.id).n == 1 and repository.get(counter.id, version=1).n == 0


def test_each_internal_attribute_is_there() -> None:
    app: Application[Any] = Application(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    assert app._repository is app.repository
    assert hasattr(app.repository, "fastforward") and hasattr(app.repository, "cache")
    assert isinstance(ProcessingEvent().saved_kwargs, dict)


def test_a_postgres_store_opens_its_pool_on_first_use() -> None:
    """SharedPoolPostgresFactory swaps each store's pool for the process's shared one before
    first use: a datastore's pool is built closed, keeps its connection settings in ``kwargs``
    and is opened by ``get_connection``; ``close`` closes it."""
    env = {"POSTGRES_DBNAME": "huoke", "POSTGRES_HOST": "127.0.0.1", "POSTGRES_PORT": "5432"}
    factory = PostgresFactory(Environment("internals", {**env, "POSTGRES_USER": "u", "POSTGRES_PASSWORD": ""}))
    pool = factory.datastore.pool
    assert pool.closed and isinstance(pool.kwargs, dict) and pool.kwargs["dbname"] == "huoke"
    assert "self.pool.open(" in inspect.getsource(PostgresDatastore.get_connection)
    assert "self.pool.close()" in inspect.getsource(PostgresDatastore.close)


def test_sqlite_file_connections_use_wal_synchronous_normal_and_keep_their_statements(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """huoke's pool opens SQLite connections as eventsourcing does (autocommit, WAL, rows), with
    synchronous=NORMAL, a checkpoint every ``WAL_AUTOCHECKPOINT`` pages and a statement cache of
    many statements: eventsourcing's own asks for ``cached_statements=True``, a cache of one, and
    every statement after another is compiled again."""
    opened: list[dict[str, Any]] = []
    real_connect = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        opened.append(kwargs)
        connection: sqlite3.Connection = real_connect(*args, **kwargs)
        return connection

    monkeypatch.setattr(sqlite3, "connect", connect)
    pool = recorders.TunedSQLiteConnectionPool(db_name=str(tmp_path / "sync.db"))
    connection = pool.get_connection()
    try:
        assert isinstance(connection, SQLiteConnection)
        raw = connection._sqlite_conn
        assert raw.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert raw.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == recorders.WAL_AUTOCHECKPOINT
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal" and pool.is_journal_mode_wal
        assert raw.isolation_level is None and raw.row_factory is sqlite3.Row
        assert opened[-1]["cached_statements"] == recorders.CACHED_STATEMENTS >= 64
    finally:
        pool.put_connection(connection)
        pool.close()
    # what the pool stands in for: eventsourcing's connections keep one statement
    assert "cached_statements=True" in inspect.getsource(SQLiteConnectionPool._create_connection)


class Counter(Aggregate):
    @event("Created")
    def __init__(self) -> None:
        self.n = 0

    @event("Counted")
    def count(self) -> None:
        self.n += 1


class Counters(Application[Any]):
    def construct_recorder(self) -> Any:
        return self.factory.process_recorder()


def _app(tmp_path: Path, **env: str) -> Counters:
    return Counters(
        env={"PERSISTENCE_MODULE": recorders.SQLITE_FACTORY_TOPIC, "SQLITE_DBNAME": str(tmp_path / "pin.db"), **env}
    )


def test_a_batch_with_several_tracking_records_is_one_transaction(tmp_path: Path) -> None:
    app = _app(tmp_path)
    counter = Counter()
    counter.count()
    assert saving.save_batch(app, [counter], [Tracking("Up#0", 5), Tracking("Up#1", 7)]) == 2
    assert (app.recorder.max_tracking_id("Up#0"), app.recorder.max_tracking_id("Up#1")) == (5, 7)  # type: ignore[attr-defined]
    counter.count()
    with pytest.raises(IntegrityError):  # a replayed position writes nothing, events included
        saving.save_batch(app, [counter], [Tracking("Up#0", 6), Tracking("Up#1", 7)])
    assert app.recorder.max_tracking_id("Up#0") == 5  # type: ignore[attr-defined]
    assert len(list(app.repository.event_store.get(counter.id))) == 2


def test_a_read_on_sqlite_is_one_statement_without_begin(tmp_path: Path) -> None:
    """A read issues its statement alone (SQLite reads one snapshot for it), with no BEGIN and
    ROLLBACK around it; a write still takes the write lock first (BEGIN IMMEDIATE) and commits,
    and a failed write still writes nothing."""
    app = _app(tmp_path)
    counter = Counter()
    saving.save_batch(app, [counter], [Tracking("Up#0", 1)])
    said: list[str] = []
    conn = app.recorder.datastore.pool.get_connection()  # type: ignore[attr-defined]
    conn._sqlite_conn.set_trace_callback(said.append)
    app.recorder.datastore.pool.put_connection(conn)  # type: ignore[attr-defined]
    assert app.recorder.max_notification_id() == 1
    assert [n.originator_id for n in app.recorder.select_notifications(start=1, limit=10)] == [counter.id]
    assert app.recorder.max_tracking_ids(["Up#0", "Up#1"]) == {"Up#0": 1}  # type: ignore[attr-defined]
    assert saving.latest_versions(app, [counter.id]) == {counter.id: 1}
    assert said and all(s.lstrip().upper().startswith("SELECT") for s in said), said
    said.clear()
    counter.count()
    saving.save_batch(app, [counter])
    assert said[0] == "BEGIN IMMEDIATE" and said[-1] == "COMMIT", said
    stale = app.repository.get(counter.id)
    counter.count()
    saving.save_batch(app, [counter])
    stale.count()
    with pytest.raises(IntegrityError):
        saving.save_batch(app, [stale])
    assert app.recorder.max_notification_id() == 3 and fresh_version(app, counter.id) == 3


def fresh_version(app: Application[Any], aggregate_id: Any) -> int:
    return int(saving.fresh_get(app, aggregate_id).version)


def test_fresh_reads_bypass_the_cache_and_forgetting_drops_it(tmp_path: Path) -> None:
    app = _app(tmp_path, AGGREGATE_CACHE_MAXSIZE="100")
    counter = Counter()
    saving.save_batch(app, [counter])
    other = _app(tmp_path, AGGREGATE_CACHE_MAXSIZE="100")  # another process
    theirs = other.repository.get(counter.id)
    theirs.count()
    saving.save_batch(other, [theirs])
    assert saving.latest_versions(app, [counter.id, uuid4()]) == {counter.id: 2}
    assert saving.fresh_get(app, counter.id).n == 1
    assert saving.current_aggregates(app, [counter.id])[counter.id].version == 2
    before = app.repository
    saving.forget_cache(app)
    assert app.repository is not before


class OwnCounters(Counters):
    def construct_repository(self) -> Repository[Any]:
        return saving.construct_repository(self)


def test_a_share_cache_keeps_its_share_and_the_last_few_of_the_others(tmp_path: Path, monkeypatch: Any) -> None:
    """A process that shares its aggregates with another (the embedded helper) caches up to its
    cache's size of its own share and the last ``OTHERS_CACHED`` it used of the others'. Every
    aggregate still reads as stored, and the share outlives a cache reset."""
    monkeypatch.setattr(saving, "OTHERS_CACHED", 2)
    app = OwnCounters(
        env={
            "PERSISTENCE_MODULE": recorders.SQLITE_FACTORY_TOPIC,
            "SQLITE_DBNAME": str(tmp_path / "share.db"),
            "AGGREGATE_CACHE_MAXSIZE": "100",
            "AGGREGATE_CACHE_FASTFORWARD": "y",
        }
    )
    counters = [Counter() for _ in range(12)]
    for counter in counters[::2]:
        counter.count()
    saving.save_batch(app, counters)
    ours = {c.id for c in counters[:6]}
    saving.cache_share(app, ours.__contains__)
    cache = app.repository.cache
    assert isinstance(cache, saving.ShareCache) and not cache.cache
    found = saving.current_aggregates(app, [c.id for c in counters])
    assert {i: a.n for i, a in found.items()} == {c.id: c.n for c in counters}
    assert set(cache.cache) == ours
    assert len(cache.others.cache) == 2 and not ours & set(cache.others.cache)
    assert [app.repository.get(c.id).n for c in counters] == [c.n for c in counters]
    saving.forget_cache(app)
    assert isinstance(app.repository.cache, saving.ShareCache) and app.repository.cache.ours == cache.ours


def test_ids_read_from_a_log_are_shared_objects_with_the_same_stored_form(tmp_path: Path) -> None:
    """Notifications' originator ids and the UUIDs in events' bodies are read through one cache
    (``recorders.uuid_of``): the same id text gives the same object, and what is stored is
    eventsourcing's own ``uuid_hex``, so stores read either way."""
    from eventsourcing.persistence import JSONTranscoder, UUIDAsHex

    from engine.eventstore.values import register_values

    some = uuid4()
    assert recorders.uuid_of(str(some)) == some and recorders.uuid_of(str(some)) is recorders.uuid_of(str(some))
    plain, ours = JSONTranscoder(), JSONTranscoder()
    plain.register(UUIDAsHex())
    register_values(ours)
    stored = plain.encode({"lead_id": some})
    assert ours.encode({"lead_id": some}) == stored and b"uuid_hex" in stored
    assert ours.decode(stored)["lead_id"] == some and ours.decode(stored)["lead_id"] is ours.decode(stored)["lead_id"]
    app = _app(tmp_path)
    counter = Counter()
    saving.save_batch(app, [counter])
    notes = [
        *app.recorder.select_notifications(start=1, limit=10),
        *app.recorder.select_notifications(start=1, limit=10),
    ]
    assert notes[0].originator_id == counter.id and notes[0].originator_id is notes[1].originator_id


def test_a_batch_of_events_is_inserted_in_one_statement_with_its_notification_ids(tmp_path: Path) -> None:
    """The tuned SQLite recorder inserts a batch with one executemany and gives back each
    event's notification id, as eventsourcing's one-by-one inserts did; a version already
    taken rolls the whole batch back."""
    app = _app(tmp_path)
    first, second = Counter(), Counter()
    first.count()
    recordings = app.save(first, second)
    notes = app.recorder.select_notifications(start=1, limit=10)
    assert [r.notification.id for r in recordings] == [n.id for n in notes] == [1, 2, 3]
    assert [(n.originator_id, n.originator_version) for n in notes] == [(first.id, 1), (first.id, 2), (second.id, 1)]
    stale = app.repository.get(second.id)
    second.count()
    app.save(second)
    stale.count()  # the same version again, after a new aggregate in the same batch
    with pytest.raises(IntegrityError):
        app.save(Counter(), stale)
    assert app.recorder.max_notification_id() == 4  # nothing of the refused batch was stored
    third = Counter()
    assert [r.notification.id for r in app.save(third)] == [5]


def test_the_subscription_internals_the_batching_runner_reads_are_there() -> None:
    """projections.runners.BatchingProjectionRunner replaces the runner's event loop and asks a
    ListenNotifySubscription whether it holds notifications already read."""
    from eventsourcing.persistence import ListenNotifySubscription
    from eventsourcing.projection import ProjectionRunner

    params = ["subscription", "projection", "is_stopping", "runner"]
    assert list(inspect.signature(ProjectionRunner._process_events_loop).parameters) == params
    source = inspect.getsource(ListenNotifySubscription.__init__)
    for name in ("self._notifications:", "self._notifications_index:", "self._notifications_queue:"):
        assert name in source
    base: Any = ProjectionRunner.__mro__[1]
    assert "target=self._process_events_loop" in inspect.getsource(base.__init__)


@pytest.mark.parametrize("store", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_claims_are_written_with_the_events_or_not_at_all(
    store: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A name claimed with a batch's events is there exactly when they are: a name already
    claimed refuses the whole batch; the migration's claims skip the names already taken."""
    if store == "sqlite":
        app = _app(tmp_path)
    else:
        schema = request.getfixturevalue("pg_schema")
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        env = Settings(database_url=f"{POSTGRES_URL}?schema={schema}").postgres_env() or {}
        app = Counters(env={**env, "PERSISTENCE_MODULE": recorders.POSTGRES_FACTORY_TOPIC})
    try:
        first = Counter()
        mine = [Claim("phone#a", "1"), Claim("email#b", "1"), Claim("contact:1:1", "x", "contact:1")]
        assert saving.save_batch(app, [first], claims=mine) == 1
        assert saving.claimed(app, ["phone#a", "email#b", "phone#c"]) == {"phone#a": "1", "email#b": "1"}
        second = Counter()
        with pytest.raises(IntegrityError):
            saving.save_batch(app, [second], claims=[Claim("contact:1:2", "y", "contact:1"), Claim("phone#a", "2")])
        assert app.recorder.max_notification_id() == 1  # nothing of the refused batch was stored
        assert saving.claimed(app, ["phone#a", "contact:1:2"]) == {"phone#a": "1"}
        assert saving.add_claims(app, [Claim("phone#a", "3"), Claim("contact:1:0", "w", "contact:1")]) == 1
        assert saving.owned_claims(app, ["contact:1", "contact:2"]) == [
            Claim("contact:1:0", "w", "contact:1"),
            Claim("contact:1:1", "x", "contact:1"),
        ]
    finally:
        app.close()


def test_event_states_are_stored_compressed_and_states_stored_before_read_as_they_are(tmp_path: Path) -> None:
    app = _app(tmp_path, COMPRESSOR_TOPIC=recorders.COMPRESSOR_TOPIC)
    counter = Counter()
    counter.count()
    saving.save_batch(app, [counter])
    [created, _] = app.recorder.select_events(counter.id)
    # a Zstandard frame naming the current dictionary by its ID
    assert created.state[:4] == b"\x28\xb5\x2f\xfd" and b"originator_topic" not in created.state
    current = compression.zstd_dictionary(compression.CURRENT).dict_id()
    assert zstandard.get_frame_parameters(created.state).dict_id == current == 0x48554B02
    plain = Application[Any](env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": ":memory:"})

    def stored_as(aggregate: Counter, encode: Callable[[bytes], bytes]) -> StoredEvent:
        [e] = [plain.mapper.to_stored_event(e) for e in aggregate.collect_events()]
        return StoredEvent(e.originator_id, e.originator_version, e.topic, encode(e.state))

    def with_states_1(state: bytes) -> bytes:  # the zlib dictionary huoke released first
        c = zlib.compressobj(6, zdict=compression.dictionary("states-1.zdict"))
        return c.compress(state) + c.flush()

    before = Counter()  # as a store from before compression wrote it: plain JSON
    zlibbed = Counter()  # as a store from before dictionaries wrote it: plain zlib
    primed = Counter()  # as a store from before Zstandard wrote it: zlib with states-1.zdict
    stored = [stored_as(before, lambda s: s), stored_as(zlibbed, lambda s: zlib.compress(s, 1))]
    stored.append(stored_as(primed, with_states_1))
    assert stored[0].state[:1] == b"{"
    assert stored[2].state[2:6] == compression.CHECKSUMS["states-1.zdict"].to_bytes(4, "big")
    app.recorder.insert_events(stored)
    assert app.repository.get(before.id).n == 0 and app.repository.get(counter.id).n == 1
    assert app.repository.get(zlibbed.id).n == 0 and app.repository.get(primed.id).n == 0


def test_the_released_state_dictionaries_never_change() -> None:
    """A stored state names its dictionary (by ID, or by checksum for zlib's): editing a released
    one would leave every state compressed with it unreadable. A new dictionary is a new file
    (bench/zdict.py)."""
    assert set(compression.RELEASED) == set(compression.CHECKSUMS) and compression.CURRENT in compression.RELEASED
    for name in compression.RELEASED:
        assert zlib.adler32(compression.dictionary(name)) == compression.CHECKSUMS[name], name
    ids = [compression.zstd_dictionary(n).dict_id() for n in compression.RELEASED if n.endswith(".zstd")]
    assert len(set(ids)) == len(ids) and all(32768 <= i < 2**31 for i in ids)  # unique, not reserved


def test_a_state_compressed_with_a_dictionary_this_huoke_lacks_is_a_clear_error() -> None:
    newer = zlib.compressobj(6, zdict=b'{"timestamp":{"_type_":"datetime_iso"} from a newer huoke')
    state = newer.compress(b'{"n": 1}') + newer.flush()
    with pytest.raises(compression.UnknownDictionaryError, match="written by a newer huoke"):
        compression.decompress(state)
    samples: list[bytes | bytearray | memoryview] = [
        b'{"n": %d, "topic": "engine.domain:Counter.Counted", "at": %d}' % (i, i * 7919) for i in range(3000)
    ]
    unreleased = zstandard.train_dictionary(4096, samples, dict_id=0x48554BFF)
    state = zstandard.ZstdCompressor(dict_data=unreleased).compress(b'{"n": 1}')
    with pytest.raises(compression.UnknownDictionaryError, match=r"0x48554bff.*written by a newer huoke"):
        compression.decompress(state)
    assert compression.decompress(compression.compress(b'{"n": 1}')) == b'{"n": 1}'


def test_each_thread_compresses_with_its_own_context() -> None:
    """Zstandard contexts are not thread-safe: threads compressing and reading states at once
    each get their own, and every state reads back as it was."""
    states = [b'{"n": %d, "text": "%s"}' % (i, b"x" * (i % 300)) for i in range(3000)]

    def round_trip(part: list[bytes]) -> list[bytes]:
        return [compression.decompress(compression.compress(s)) for s in part]

    with ThreadPoolExecutor(4) as pool:
        back = list(pool.map(round_trip, [states[i::4] for i in range(4)]))
    assert [s for i in range(4) for s in states[i::4]] == [s for part in back for s in part]


def test_a_conflicting_unit_of_work_is_tried_again_after_a_short_pause_then_gives_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A burst of another process's writes can make several tries in a row conflict: each is
    retried after a short random pause (at most 200 ms), reading afresh, up to
    ``CONFLICT_ATTEMPTS``; then the conflict propagates."""
    app = _app(tmp_path)
    counter = Counter()
    saving.save_batch(app, [counter])
    paused: list[float] = []
    monkeypatch.setattr("engine.eventstore.saving.time.sleep", paused.append)
    tries: list[int] = []

    def work(conflicts: int) -> int:
        tries.append(1)
        mine = app.repository.get(counter.id)
        if len(tries) <= conflicts:  # another process writes it between this read and its save
            other = saving.fresh_get(app, counter.id)
            other.count()
            saving.save_batch(app, [other])
        mine.count()
        saving.save_batch(app, [mine])
        return int(mine.n)

    assert saving.retry_conflicts(app, lambda: work(7)) == 8  # 7 counts by the other, then ours
    assert len(tries) == 8 and len(paused) == 7 and all(0 <= p <= 0.2 for p in paused)
    tries.clear()
    with pytest.raises(IntegrityError):
        saving.retry_conflicts(app, lambda: work(saving.CONFLICT_ATTEMPTS))
    assert len(tries) == saving.CONFLICT_ATTEMPTS


def test_a_page_of_some_topics_is_filtered_in_the_database_and_reaches_the_head(tmp_path: Path) -> None:
    """``scan`` fetches only the notifications of the topics asked for; a full page ends at its
    last one, a page that is not full at the head read before it (what lies between has other
    topics and is never read again); at the head there is no page."""
    from eventsourcing.utils import get_topic

    from engine.application.projecting import scan

    app = _app(tmp_path)
    first, second = Counter(), Counter()
    first.count()
    second.count()
    first.count()
    saving.save_batch(app, [first, second])  # 1 Created, 2-3 Counted (first), 4 Created, 5 Counted
    created, counted = get_topic(Counter.Created), get_topic(Counter.Counted)  # type: ignore[attr-defined]
    full = scan(app.recorder, 0, [counted], 2)  # type: ignore[arg-type]
    assert full is not None and [n.id for n in full.notes] == [2, 3] and full.last == 3
    rest = scan(app.recorder, full.last, [counted], 2)  # type: ignore[arg-type]
    assert rest is not None and [n.id for n in rest.notes] == [5] and rest.last == 5
    none_left = scan(app.recorder, 1, [created], 5)  # type: ignore[arg-type]
    assert none_left is not None and [n.id for n in none_left.notes] == [4] and none_left.last == 5
    assert scan(app.recorder, 5, [created, counted], 5) is None  # type: ignore[arg-type]


def test_a_failed_tick_says_where_in_huoke_it_failed(tmp_path: Path) -> None:
    """A worker's failed tick is one line without a traceback; it names the innermost frames of
    huoke's own code the error came through (a conflict that outlived every try, say)."""
    from engine.bootstrap.services import failed_where

    app = _app(tmp_path)
    counter = Counter()
    saving.save_batch(app, [counter])

    def conflicting() -> None:
        stale = app.repository.get(counter.id)
        other = saving.fresh_get(app, counter.id)
        other.count()
        saving.save_batch(app, [other])
        stale.count()
        saving.save_batch(app, [stale])

    with pytest.raises(IntegrityError) as raised:
        saving.retry_conflicts(app, conflicting, attempts=1)
    # (the test's own function is not huoke's: a worker's line names its use case there)
    assert failed_where(raised.value) == "recorders.transaction < saving.save_batch < saving.retry_conflicts"
