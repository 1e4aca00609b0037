"""Where each store lives and how it is opened: its eventsourcing settings (a SQLite file of its
own, or the shared PostgreSQL database), the views' stores, the bus relay's tracking, and the
master key that wraps the per-lead data keys (never kept in the data folder)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from eventsourcing.utils import Environment

from engine.domain.shared.money import assume_currency
from engine.eventstore import InfrastructureFactory
from engine.eventstore.coordination import Meta
from engine.eventstore.recorders import COMPRESSOR_TOPIC, POSTGRES_FACTORY_TOPIC, SQLITE_FACTORY_TOPIC
from engine.eventstore.vault import KeyVault, MasterKeys, VaultKeyError, new_master_key, parse_master_key
from engine.settings import Settings
from projections.delivery_schedule import DeliverySchedulePostgres, DeliveryScheduleSQLite
from projections.funnel import FunnelCountsPostgres, FunnelCountsSQLite
from projections.journey_index import JourneyIndexPostgres, JourneyIndexSQLite
from projections.referral_ledger import ReferralLedgerPostgres, ReferralLedgerSQLite
from projections.screening import ScreeningPostgres, ScreeningSQLite

APPS = ("leads", "journeys", "deliveries")
#: Each view's store (its tables and tracking) and the engine attribute that holds it.
VIEWS: dict[str, str] = {
    "funnel": "funnel",
    "journey_index": "index",
    "delivery_schedule": "schedule",
    "screening": "screening",
    "referral_ledger": "ledger",
}


def store_env(settings: Settings, name: str, create: bool = False) -> dict[str, str]:
    """eventsourcing settings for one application or view: its own SQLite file, or PostgreSQL.
    Tables are created only by ``huoke db init`` (``create``), never as a side effect."""
    assume_currency(settings.currency)  # what amounts stored before events carried Money were in
    pg = settings.postgres_env()
    if pg is not None:
        return {
            **pg,
            "PERSISTENCE_MODULE": POSTGRES_FACTORY_TOPIC,  # one connection pool per process
            "CREATE_TABLE": "y" if create else "n",
            **_cache_env(name, settings.aggregate_cache),
        }
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    return {
        "PERSISTENCE_MODULE": SQLITE_FACTORY_TOPIC,
        "SQLITE_DBNAME": str(settings.data_dir / f"{name}.db"),
        "SQLITE_LOCK_TIMEOUT": "30",
        "CREATE_TABLE": "y" if create else "n",
        **_cache_env(name, settings.aggregate_cache),
    }


def _cache_env(name: str, size: int) -> dict[str, str]:
    return {
        "COMPRESSOR_TOPIC": COMPRESSOR_TOPIC,  # event states compressed (read back either way)
        "AGGREGATE_CACHE_MAXSIZE": str(size),
        # Leads are written by every process (serve takes opt-outs, imports capture, workers
        # advance stages): each cached lead is brought up to date from the store before use (one
        # indexed read), so a decision always sees what other processes committed. Enrolments
        # and deliveries have one writer, the worker that owns their lead's partition (it drops
        # its caches when it gains a partition).
        "AGGREGATE_CACHE_FASTFORWARD": "y" if name == "leads" else "n",
        # Use cases never mutate a loaded aggregate without saving it, and reset their
        # repository when a batch fails (see Leads/Journeys/Deliveries), so no deep copy.
        "DEEPCOPY_FROM_AGGREGATE_CACHE": "n",
    }


def master_keys(settings: Settings) -> MasterKeys:
    """The master key from ``HUOKE_MASTER_KEY`` or its file (made by ``huoke db init``)."""
    text = settings.master_key.get_secret_value()
    where = "HUOKE_MASTER_KEY"
    if not text:
        path = settings.master_key_path
        where = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            if settings.master_key_file is None and settings.legacy_master_key_path.exists():
                raise VaultKeyError(
                    f"the master key is still inside the data folder ({settings.legacy_master_key_path}): "
                    f"run huoke db init, which moves it out to {path}"
                ) from None
            raise VaultKeyError(
                f"no master key: set HUOKE_MASTER_KEY or run huoke db init (which writes {path})"
            ) from None
    old = tuple(
        parse_master_key(k, "HUOKE_MASTER_KEY_OLD") for k in settings.master_key_old.get_secret_value().split(",") if k
    )
    return MasterKeys(parse_master_key(text, where), old)


def vault_for(settings: Settings) -> KeyVault | None:
    if not settings.encrypt_pii:
        return None
    return KeyVault(master_keys(settings), settings.postgres_env(), settings.data_dir)


def _ensure_master_key(settings: Settings) -> None:
    """Embedded set-up writes a master key file (owner-only) when none is configured, outside the
    data folder; a key left inside it by an older huoke is moved out (a copy of the data folder
    must not carry the key that opens it)."""
    path = settings.master_key_path
    if not settings.encrypt_pii or settings.master_key.get_secret_value() or path.exists():
        return
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    legacy = settings.legacy_master_key_path
    if settings.master_key_file is None and legacy.exists():
        _move_out(legacy, path)
        return
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=".master.", delete=False) as f:
        os.chmod(f.name, 0o600)
        f.write(new_master_key() + "\n")
    try:
        os.link(f.name, path)  # appears whole, or not at all; a concurrent init's key wins
    finally:
        os.unlink(f.name)


def _move_out(legacy: Path, path: Path) -> None:
    """Move the key file: a hard link (it appears whole) then the old name removed; across file
    systems, a private copy, synced, before the old file is overwritten and removed."""
    try:
        os.link(legacy, path)
    except FileExistsError:
        pass  # another set-up moved it first
    except OSError:
        with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=".master.", delete=False) as f:
            os.chmod(f.name, 0o600)
            f.write(legacy.read_text(encoding="utf-8"))
            f.flush()
            os.fsync(f.fileno())
        os.link(f.name, path)
        os.unlink(f.name)
        with legacy.open("r+b") as old:  # the old copy is not left readable on that file system
            old.write(b"\0" * legacy.stat().st_size)
            old.flush()
            os.fsync(old.fileno())
    legacy.unlink(missing_ok=True)


def meta_for(settings: Settings) -> Meta:
    return Meta(settings.postgres_env(), settings.data_dir)


def relay_tracker(settings: Settings, create: bool = False) -> Any:
    """Where the bus relay records how far it has published each log (store ``bus_relay``)."""
    env = store_env(settings, "bus_relay", create=create)
    return InfrastructureFactory.construct(env=Environment("bus_relay", env)).tracking_recorder()


def build_view(settings: Settings, name: str) -> Any:
    return _view(settings, name, store_env(settings, name))


def _view(settings: Settings, name: str, env: dict[str, str]) -> Any:
    pg = settings.postgres_env() is not None
    cls = {
        "funnel": FunnelCountsPostgres if pg else FunnelCountsSQLite,
        "journey_index": JourneyIndexPostgres if pg else JourneyIndexSQLite,
        "delivery_schedule": DeliverySchedulePostgres if pg else DeliveryScheduleSQLite,
        "screening": ScreeningPostgres if pg else ScreeningSQLite,
        "referral_ledger": ReferralLedgerPostgres if pg else ReferralLedgerSQLite,
    }[name]
    factory = InfrastructureFactory.construct(env=Environment(name, env))
    view = factory.tracking_recorder(cls)
    if hasattr(view, "timezone"):  # views that count by day count the lender's days
        view.timezone = ZoneInfo(settings.timezone)
    return view
