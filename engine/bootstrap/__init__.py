"""The composition root: builds the engine from settings, with overridable adapters."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from eventsourcing.utils import Environment

from engine.adapters.clock import SystemClock
from engine.adapters.link_tracking import TrackedLinks
from engine.adapters.model_files import ModelLab
from engine.adapters.outbox import OutboxEmailChannel, OutboxSmsChannel
from engine.adapters.smtp import SmtpEmailChannel
from engine.adapters.templates import JinjaRenderer
from engine.adapters.twilio_sms import TwilioSmsChannel
from engine.adapters.webhook import WebhookChannel
from engine.adapters.yaml_files import load_yaml, strip_lines
from engine.application.access import Access
from engine.application.delivery.app import Deliveries
from engine.application.delivery.base import Retries, Sender
from engine.application.delivery.links import LinkKeys
from engine.application.engine import Engine
from engine.application.journeys.app import Journeys
from engine.application.journeys.validation import Definitions, load_definitions
from engine.application.leads.app import Leads
from engine.application.marketing import Marketing
from engine.application.partitions import Partitions
from engine.application.ports import Channel, Clock
from engine.application.referrals import Referrals
from engine.application.screening.models import monitor
from engine.domain.delivery.tracking import tracking_key
from engine.domain.journeys.journey import Journey
from engine.domain.leads.segments import SegmentRules
from engine.domain.shared.errors import JourneyValidationError
from engine.domain.shared.money import assume_currency
from engine.eventstore import InfrastructureFactory
from engine.eventstore.coordination import Meta, init_lock
from engine.eventstore.saving import POSTGRES_FACTORY_TOPIC, SQLITE_FACTORY_TOPIC
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
            **_cache_env(name),
        }
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    return {
        "PERSISTENCE_MODULE": SQLITE_FACTORY_TOPIC,
        "SQLITE_DBNAME": str(settings.data_dir / f"{name}.db"),
        "SQLITE_LOCK_TIMEOUT": "30",
        "CREATE_TABLE": "y" if create else "n",
        **_cache_env(name),
    }


def _cache_env(name: str) -> dict[str, str]:
    return {
        "AGGREGATE_CACHE_MAXSIZE": "500000",
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


def init_database(settings: Settings) -> int:
    """Create every table and index huoke uses (idempotent; safe when several processes run it at
    once) and fix the partition count; returns it."""
    meta = meta_for(settings)
    with init_lock(meta.pg, settings.data_dir) as conn:
        meta.create(conn)
        with contextlib.suppress(FileExistsError):  # another process wrote it first
            _ensure_master_key(settings)
        vault = vault_for(settings)
        if vault is not None:
            vault.create_table()
        env = {
            name: store_env(settings, name, create=True) for name in (*APPS, "access", "referrals", "marketing", *VIEWS)
        }
        for app in (Leads, Journeys, Deliveries):
            app(env[app.name.lower()], *_app_args(app)).close()
        Access(env["access"], SystemClock()).close()
        Marketing(env["marketing"], SystemClock()).close()
        Referrals(env["referrals"], SystemClock(), b"").close()
        relay_tracker(settings, create=True).datastore.close()
        # Stores from before the identity index was hashed: index their people under hashed keys.
        leads = Leads(
            env["leads"],
            SegmentRules((), (), (), "set-up"),
            SystemClock(),
            settings.suppression_pepper.get_secret_value(),
            vault=vault,
        )
        try:
            if meta.get("identities_hashed") is None:
                leads.migrate_identities()
                meta.put_default("identities_hashed", "yes", conn)
        finally:
            leads.close()
        for name in VIEWS:
            _view(settings, name, env[name]).datastore.close()
        count = settings.partitions if meta.pg is not None else 1
        partitions = int(meta.put_default("partitions", str(count), conn))
    if meta.pg is None:  # stores made before files were private become private too
        settings.data_dir.chmod(0o700)
        for path in settings.data_dir.iterdir():
            if path.is_file():
                path.chmod(0o600)
    return partitions


def _app_args(app: type[Any]) -> tuple[Any, ...]:
    """Constructor arguments for an application built only to create its tables."""
    if app is Leads:
        return (SegmentRules((), (), (), "set-up"), SystemClock())
    if app is Journeys:
        return (SystemClock(),)
    return (SystemClock(), None, {}, None)


def link_tracker(settings: Settings) -> TrackedLinks | None:
    """Tracked links on ``HUOKE_PUBLIC_URL`` (None: tracking off, or nowhere for clicks to land)."""
    current, _ = settings.link_keys
    if not settings.track_links or not settings.public_url or not current:
        return None
    return TrackedLinks(settings.public_url.rstrip("/"), tracking_key(current), opens=settings.track_opens)


def referral_key(settings: Settings) -> bytes:
    """The key of referral codes: derived from the suppression pepper, which never rotates (the
    suppression list's hashes depend on it), so every lead's code stays the same."""
    pepper = settings.suppression_pepper.get_secret_value().encode()
    return hmac.new(pepper, b"huoke referral codes v1", hashlib.sha256).digest()


def access_for(settings: Settings, clock: Clock | None = None) -> Access:
    """API keys and the audit trail (their own store, ``access``)."""
    return Access(store_env(settings, "access"), clock or SystemClock())


def marketing_for(settings: Settings, clock: Clock | None = None) -> Marketing:
    """Marketing costs (their own store, ``marketing``)."""
    return Marketing(store_env(settings, "marketing"), clock or SystemClock())


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


def models_for(settings: Settings) -> ModelLab:
    """Model files (scorecards, skops pipelines) live beside the data, checked by SHA-256."""
    return ModelLab(settings.data_dir / "models")


def renderer_for(settings: Settings) -> JinjaRenderer:
    return JinjaRenderer(settings.templates_dir, settings.default_locale)


def folder_journeys(settings: Settings) -> tuple[list[tuple[Journey, dict[str, Any]]], str]:
    """The journeys folder as loaded, or none and why (the published versions run regardless):
    what a preview or a backtest runs beside the journey it tries."""
    try:
        return load_journey_definitions(settings).journeys, ""
    except JourneyValidationError as e:
        return [], f"the journeys folder does not validate ({len(e.problems)} problem(s)): {e.problems[0]}"


def load_journey_definitions(settings: Settings, only: list[Path] | None = None) -> Definitions:
    """Validate the journeys folder (raises JourneyValidationError listing every problem)."""
    return load_definitions(
        settings.journeys_dir, renderer_for(settings), load_yaml, strip_lines, only, settings.config_dir
    )


def default_channels(settings: Settings) -> dict[str, Channel]:
    sms: Channel = OutboxSmsChannel(settings.outbox_dir)
    if settings.sms_transport == "twilio":
        callback = f"{settings.public_url.rstrip('/')}/sms/status" if settings.public_url else ""
        sms = TwilioSmsChannel(
            settings.twilio_account_sid,
            settings.twilio_auth_token.get_secret_value(),
            settings.twilio_from,
            settings.twilio_base_url,
            callback,
            rate=settings.sms_rate,
        )
    email: Channel
    if settings.email_transport == "smtp":
        email = SmtpEmailChannel(
            settings.smtp_host,
            settings.smtp_port,
            settings.smtp_tls,
            settings.smtp_username,
            settings.smtp_password.get_secret_value(),
            settings.sender_name,
            settings.sender_email,
            settings.smtp_timeout,
            settings.smtp_connections,
            settings.email_rate,
            settings.smtp_reconcile_url,
        )
    else:
        email = OutboxEmailChannel(settings.outbox_dir, settings.sender_name, settings.sender_email)
    channels: dict[str, Channel] = {"email": email, "sms": sms}
    if settings.webhook_url:
        channels["webhook"] = WebhookChannel(settings.webhook_url)
    return channels


def bootstrap(
    settings: Settings | None = None,
    clock: Clock | None = None,
    channels: dict[str, Channel] | None = None,
    definitions: Definitions | None = None,
) -> Engine:
    """Build the engine: stores, definitions (validated), channels and views. The database must
    have been set up (``huoke db init``); journeys run the versions published in the store."""
    settings = settings or Settings()
    clock = clock or SystemClock()
    meta = meta_for(settings)
    count = meta.partitions()
    definitions = definitions if definitions is not None else load_journey_definitions(settings)
    renderer = renderer_for(settings)
    leads = Leads(
        store_env(settings, "leads"),
        definitions.rules,
        clock,
        settings.suppression_pepper.get_secret_value(),
        definitions.catalogue,
        settings.email_double_opt_in,
        models_for(settings),
        vault_for(settings),
        legacy_identities=meta.get("identities_hashed") is None,
        currency=settings.currency,
    )
    if leads.vault is not None and settings.postgres_env() is not None:
        leads.vault.datastore = leads.recorder.datastore  # type: ignore[attr-defined]  # share its pool
    journeys = Journeys(
        store_env(settings, "journeys"),
        clock,
        settings.timezone,
        timedelta(hours=settings.stale_after_hours),
        vault=leads.vault,
    )
    sender = Sender(
        name=settings.sender_name,
        email=settings.sender_email,
        postal_address=settings.sender_postal_address,
        unsubscribe_url=settings.unsubscribe_url,
        link_keys=LinkKeys(*settings.link_keys),
        default_locale=settings.default_locale,
    )
    deliveries = Deliveries(
        store_env(settings, "deliveries"),
        clock,
        renderer,
        channels if channels is not None else default_channels(settings),
        sender,
        definition=journeys.definition,
        policy=definitions.policy,
        default_tz=settings.timezone,
        retries=Retries(
            retry_for=timedelta(hours=settings.retry_hours),
            in_doubt=settings.in_doubt,
            stale_after=timedelta(hours=settings.stale_after_hours),
        ),
        vault=leads.vault,
        referral_key=referral_key(settings),
        tracker=link_tracker(settings),
    )
    referrals = Referrals(
        store_env(settings, "referrals"),
        clock,
        referral_key(settings),
        definitions.programmes,
        default_tz=settings.timezone,
        public_url=settings.public_url,
    )
    engine = Engine(
        clock=clock,
        leads=leads,
        journeys=journeys,
        deliveries=deliveries,
        referrals=referrals,
        funnel=build_view(settings, "funnel"),
        index=build_view(settings, "journey_index"),
        schedule=build_view(settings, "delivery_schedule"),
        screening=build_view(settings, "screening"),
        ledger=build_view(settings, "referral_ledger"),
        desk=definitions.desk,
        parts=Partitions.every(count),
        monitor_models=monitor,
    )
    deliveries.open_before = engine.schedule.open_before  # each enrolment's messages in order
    journeys.go_live(j.id for j, _ in definitions.journeys)
    return engine


# Past moments and sandboxes (they build on what is above).
from engine.bootstrap.moments import AS_OF_KEPT as AS_OF_KEPT  # noqa: E402
from engine.bootstrap.moments import engine_as_of as engine_as_of  # noqa: E402
from engine.bootstrap.moments import sandbox as sandbox  # noqa: E402
