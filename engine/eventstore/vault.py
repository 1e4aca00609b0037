"""Envelope encryption of personal data, one data key per lead (crypto-shredding).

Each lead's personal fields are sealed with AES-256-GCM under the lead's own data key; data keys
are stored wrapped (AES-256-GCM) by a master key that never touches the database. Erasing a lead
deletes its data key: every sealed field of every event of that lead becomes unreadable for good,
wherever copies of the event log went, while what is not personal (stages, loans, consent
history) stays. Master keys rotate: ``rotate`` rewraps every data key under the current master
key, after which the old one can be retired.
"""

from __future__ import annotations

import base64
import hashlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from psycopg import sql

from engine.domain.shared.errors import HuokeError
from engine.eventstore.coordination import pg_connect

#: A data key read from the store is trusted this long in a process; an erasure elsewhere
#: reaches every process within this time (the store itself forgets at once).
KEY_TTL = 300.0
NONCE = 12
#: Partitions of the PostgreSQL key table: an erasure rewrites one (1/32 of the keys).
KEY_PARTITIONS = 32
#: Seconds an erasure waits for other readers (SQLite's log readers; PostgreSQL transactions
#: that began before it) before it can scrub the old key.
SCRUB_WAIT = 30.0
#: The row of the index key among the data keys (no lead has the nil id).
INDEX_KEY_ID = UUID(int=0)


class VaultKeyError(HuokeError):
    """The master key is missing, malformed, or not the one the data keys were wrapped with."""


def key_id(key: bytes) -> str:
    return hashlib.sha256(b"huoke-master-key:" + key).hexdigest()[:8]


def parse_master_key(text: str, where: str) -> bytes:
    """A master key: 32 bytes, written as URL-safe base64 (what ``new_master_key`` prints)."""
    try:
        key = base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))
    except ValueError:
        key = b""
    if len(key) != 32:
        raise VaultKeyError(f"{where}: a master key is 32 random bytes in URL-safe base64 (huoke keys new)")
    return key


def new_master_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")


@dataclass(frozen=True)
class MasterKeys:
    """The key that wraps new data keys, and older ones still able to unwrap."""

    current: bytes
    old: tuple[bytes, ...] = ()

    def by_id(self, kid: str) -> bytes | None:
        return next((k for k in (self.current, *self.old) if key_id(k) == kid), None)


@dataclass
class KeyVault:
    """Data keys in ``lead_keys`` (SQLite file ``keys.db`` beside the stores, or a PostgreSQL
    table in huoke's schema)."""

    master: MasterKeys
    pg: dict[str, str] | None
    data_dir: Path
    _cache: dict[UUID, tuple[float, bytes | None]] = field(default_factory=dict, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _conn: Any = field(default=None, repr=False)
    #: On PostgreSQL, the leads store's connection pool (no connection of the vault's own).
    datastore: Any = field(default=None, repr=False)

    # ---- storage ---------------------------------------------------------------------------

    @property
    def _table(self) -> Any:
        return sql.Identifier(self.pg["POSTGRES_SCHEMA"], "lead_keys") if self.pg else "lead_keys"

    def _connection(self) -> Any:
        if self._conn is None:
            if self.pg is not None:
                self._conn = pg_connect(self.pg)
            else:
                self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
                conn = sqlite3.connect(self.data_dir / "keys.db", timeout=30, check_same_thread=False)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA secure_delete=ON")  # an erased key does not linger in free pages
                self._conn = conn
        return self._conn

    def _sql(self, statement: str) -> Any:
        if self.pg is None:
            return statement.format(self._table)
        return sql.SQL(statement.replace("?", "%s")).format(self._table)

    def _execute(self, statement: str, params: Iterable[Any] = (), many: bool = False) -> list[Any]:
        with self._lock:  # one connection, shared by the threads of a process
            return self._run(statement, params, many)

    def _run(self, statement: str, params: Iterable[Any], many: bool) -> list[Any]:
        if self.pg is not None and self.datastore is not None:
            with self.datastore.transaction(commit=True) as cursor:
                if many:
                    cursor.executemany(self._sql(statement), list(params))
                    return []
                cursor.execute(self._sql(statement), tuple(params))
                return [tuple(r.values()) for r in cursor.fetchall()] if cursor.description else []
        conn = self._connection()
        if self.pg is None:
            with conn:
                cursor = (
                    conn.executemany(self._sql(statement), params)
                    if many
                    else conn.execute(self._sql(statement), tuple(params))
                )
                return list(cursor.fetchall())
        with conn.transaction(), conn.cursor() as cursor:
            if many:
                cursor.executemany(self._sql(statement), list(params))
                return []
            cursor.execute(self._sql(statement), tuple(params))
            return cursor.fetchall() if cursor.description else []

    def create_table(self) -> None:
        """The data keys' table. On PostgreSQL it is hash-partitioned, so an erasure can rewrite the
        one small partition that held the key (``VACUUM FULL``: no dead tuple keeps it); a table
        from before partitioning is moved into the partitioned one, in one transaction."""
        if self.pg is None:
            self._execute(
                "CREATE TABLE IF NOT EXISTS {} (lead_id TEXT PRIMARY KEY, kek TEXT NOT NULL, wrapped BLOB, "
                "erased_at TEXT)"
            )
            return
        schema = self.pg["POSTGRES_SCHEMA"]
        with pg_connect(self.pg) as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{schema}.lead_keys",))
            kind = conn.execute(
                "SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relname = 'lead_keys'",
                (schema,),
            ).fetchone()
            if kind is not None and kind[0] == "p":
                return
            table, old = sql.Identifier(schema, "lead_keys"), sql.Identifier(schema, "lead_keys_unpartitioned")
            if kind is not None:
                conn.execute(sql.SQL("ALTER TABLE {} RENAME TO lead_keys_unpartitioned").format(table))
                conn.execute(
                    sql.SQL("ALTER TABLE {} RENAME CONSTRAINT lead_keys_pkey TO lead_keys_unpartitioned_pkey").format(
                        old
                    )
                )
            conn.execute(
                sql.SQL(
                    "CREATE TABLE {} (lead_id TEXT PRIMARY KEY, kek TEXT NOT NULL, wrapped BYTEA, erased_at TEXT) "
                    "PARTITION BY HASH (lead_id)"
                ).format(table)
            )
            for n in range(KEY_PARTITIONS):
                conn.execute(
                    sql.SQL("CREATE TABLE {} PARTITION OF {} FOR VALUES WITH (MODULUS {}, REMAINDER {})").format(
                        sql.Identifier(schema, f"lead_keys_{n:02d}"), table, sql.Literal(KEY_PARTITIONS), sql.Literal(n)
                    )
                )
            if kind is not None:
                conn.execute(sql.SQL("INSERT INTO {} SELECT * FROM {}").format(table, old))
                conn.execute(sql.SQL("DROP TABLE {}").format(old))  # its files go with it

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # ---- data keys -------------------------------------------------------------------------

    def _wrap(self, lead_id: UUID, dek: bytes) -> bytes:
        nonce = os.urandom(NONCE)
        return nonce + AESGCM(self.master.current).encrypt(nonce, dek, lead_id.bytes)

    def _unwrap(self, lead_id: UUID, kek: str, wrapped: bytes) -> bytes:
        master = self.master.by_id(kek)
        if master is None:
            raise VaultKeyError(
                f"lead {lead_id}'s data key is wrapped by master key {kek}, which is not configured "
                "(HUOKE_MASTER_KEY / HUOKE_MASTER_KEY_OLD)"
            )
        try:
            return AESGCM(master).decrypt(wrapped[:NONCE], wrapped[NONCE:], lead_id.bytes)
        except InvalidTag:
            raise VaultKeyError(f"lead {lead_id}'s data key does not open with master key {kek}") from None

    def prepare(self, lead_ids: Iterable[UUID]) -> None:
        """Make sure each lead has a data key (one transaction for a batch of new leads)."""
        with self._lock:
            now = time.monotonic()
            missing = [i for i in dict.fromkeys(lead_ids) if i not in self._cache or self._cache[i][0] < now]
            if not missing:
                return
            self._load(missing)
            new = [i for i in missing if i not in self._cache]
            if new:
                rows = [(str(i), key_id(self.master.current), self._wrap(i, AESGCM.generate_key(256))) for i in new]
                self._execute(
                    "INSERT INTO {} (lead_id, kek, wrapped) VALUES (?, ?, ?) ON CONFLICT (lead_id) DO NOTHING",
                    rows,
                    many=True,
                )
                self._load(new)  # whatever won a race between processes is the key

    def warm(self, lead_ids: Iterable[UUID]) -> None:
        """Load (once per ``KEY_TTL``) the data keys of leads about to be read."""
        with self._lock:
            now = time.monotonic()
            missing = [i for i in lead_ids if i not in self._cache or self._cache[i][0] < now]
            if missing:
                self._load(missing)

    def _load(self, lead_ids: list[UUID]) -> None:
        expires = time.monotonic() + KEY_TTL
        for start in range(0, len(lead_ids), 500):
            chunk = lead_ids[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            rows = self._execute(
                f"SELECT lead_id, kek, wrapped FROM {{}} WHERE lead_id IN ({marks})",  # noqa: S608 - placeholders
                [str(i) for i in chunk],
            )
            for lead, kek, wrapped in rows:
                lead_id = UUID(lead)
                dek = None if wrapped is None else self._unwrap(lead_id, kek, bytes(wrapped))
                self._cache[lead_id] = (expires, dek)

    def _dek(self, lead_id: UUID, create: bool) -> bytes | None:
        entry = self._cache.get(lead_id)
        if entry is None or entry[0] < time.monotonic():
            if create:
                self.prepare([lead_id])
            else:
                with self._lock:
                    self._load([lead_id])
            entry = self._cache.get(lead_id)
        return entry[1] if entry else None

    # ---- sealing ---------------------------------------------------------------------------

    def seal(self, lead_id: UUID, plaintext: bytes, aad: bytes) -> bytes | None:
        """The sealed bytes, or None when the lead was erased: nothing personal is recorded for
        an erased person again (the caller stores the fields' placeholders instead)."""
        dek = self._dek(lead_id, create=True)
        if dek is None:
            return None
        nonce = os.urandom(NONCE)
        return nonce + AESGCM(dek).encrypt(nonce, plaintext, aad)

    def open(self, lead_id: UUID, blob: bytes, aad: bytes) -> bytes | None:
        """The plaintext, or None when the lead was erased (its key is gone)."""
        dek = self._dek(lead_id, create=False)
        if dek is None:
            return None
        try:
            return AESGCM(dek).decrypt(blob[:NONCE], blob[NONCE:], aad)
        except InvalidTag:
            raise VaultKeyError(
                f"a sealed field of lead {lead_id} does not open: altered, or from another store"
            ) from None

    def erase(self, lead_id: UUID, at: str) -> None:
        """Delete the lead's data key for good (the row stays, keyless, as the record of it), and
        scrub it from where the database would still keep it: SQLite's write-ahead log (its frames
        keep the old page until a checkpoint truncates it; freed space is zeroed by
        ``secure_delete``), PostgreSQL's dead tuple (the key's partition is rewritten). Idempotent:
        run again, it scrubs again."""
        self._execute(
            "INSERT INTO {} (lead_id, kek, wrapped, erased_at) VALUES (?, '', NULL, ?) "
            "ON CONFLICT (lead_id) DO UPDATE SET kek = '', wrapped = NULL, "
            "erased_at = COALESCE(lead_keys.erased_at, excluded.erased_at)",
            (str(lead_id), at),
        )
        with self._lock:
            self._cache[lead_id] = (time.monotonic() + KEY_TTL, None)
        if self.pg is None:
            self._truncate_wal()
        else:
            self._rewrite_partition(self.pg, lead_id)

    def _truncate_wal(self) -> None:
        """Copy every page into keys.db and empty keys.db-wal. The checkpoint waits (busy timeout)
        for readers on an older snapshot; the vault's own reads are short, so it soon can."""
        deadline = time.monotonic() + SCRUB_WAIT
        while True:
            with self._lock:
                busy, _, _ = self._connection().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if not busy:
                return
            if time.monotonic() > deadline:
                raise VaultKeyError(
                    "the erased key is deleted but another process kept keys.db-wal open too long to empty it; "
                    "run the erasure again (it is idempotent) once the other process has settled"
                )
            time.sleep(0.05)

    def _rewrite_partition(self, pg: dict[str, str], lead_id: UUID) -> None:
        """``VACUUM FULL`` the partition that held the key: a new file with only the live rows
        (the dead tuple with the old key goes with the old file). Outside any transaction, and
        only once no transaction that began before the key was deleted is still open anywhere in
        the database: VACUUM keeps a dead tuple such a transaction might still see, and the old
        key would survive in the new file (a report open in another session was enough)."""
        schema = pg["POSTGRES_SCHEMA"]
        with pg_connect(pg) as conn:
            row = conn.execute(
                sql.SQL(
                    "SELECT (SELECT relname FROM pg_class WHERE oid = k.tableoid) FROM {} k WHERE lead_id = %s"
                ).format(self._table),
                (str(lead_id),),
            ).fetchone()
            if row is None or row[0] == "lead_keys":  # not a partition: nothing to rewrite
                return
            self._wait_for_older_transactions(conn)
            conn.execute(sql.SQL("VACUUM FULL {}").format(sql.Identifier(schema, row[0])))

    @staticmethod
    def _wait_for_older_transactions(conn: Any) -> None:
        """Wait (at most ``SCRUB_WAIT``) until no other session of the database holds a snapshot
        or a transaction older than now (the key's deletion is committed by now)."""
        [mark] = conn.execute("SELECT pg_current_xact_id()::xid::text").fetchone()  # the 32-bit xid
        deadline = time.monotonic() + SCRUB_WAIT
        while True:
            [older] = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND ("
                "(backend_xmin IS NOT NULL AND age(backend_xmin) >= age(%s::xid)) OR "
                "(backend_xid IS NOT NULL AND age(backend_xid) >= age(%s::xid)))",
                (mark, mark),
            ).fetchone()
            if not older:
                return
            if time.monotonic() > deadline:
                raise VaultKeyError(
                    "the erased key is deleted but a transaction open since before the erasure keeps its old "
                    "version readable; run the erasure again (it is idempotent) once it has ended"
                )
            time.sleep(0.05)

    def forget(self, lead_id: UUID) -> None:
        """Drop a lead's key from this process's cache (it saw the lead's erasure in the log)."""
        with self._lock:
            self._cache.pop(lead_id, None)

    def index_key(self) -> bytes:
        """The key of the keyed hashes that index leads by phone, e-mail and source id: random,
        made once per store, kept wrapped by the master key like a data key (so a copy of the
        database alone cannot test a phone number against the index)."""
        dek = self._dek(INDEX_KEY_ID, create=True)
        if dek is None:  # pragma: no cover - the index key is never erased
            raise VaultKeyError("the index key was erased")
        return dek

    def rotate(self) -> int:
        """Rewrap every data key still wrapped by an older master key; the number rewrapped."""
        current = key_id(self.master.current)
        rows = self._execute("SELECT lead_id, kek, wrapped FROM {} WHERE wrapped IS NOT NULL AND kek <> ?", (current,))
        rewrapped = [
            (current, self._wrap(UUID(lead), self._unwrap(UUID(lead), kek, bytes(wrapped))), lead)
            for lead, kek, wrapped in rows
        ]
        self._execute("UPDATE {} SET kek = ?, wrapped = ? WHERE lead_id = ?", rewrapped, many=True)
        return len(rewrapped)
