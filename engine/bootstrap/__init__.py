"""The composition root: builds the engine from settings, with overridable adapters."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
from datetime import timedelta
from pathlib import Path
from typing import Any

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
from engine.bootstrap.stores import (
    APPS as APPS,
)
from engine.bootstrap.stores import (
    VIEWS as VIEWS,
)
from engine.bootstrap.stores import (
    _ensure_master_key,
    _view,
)
from engine.bootstrap.stores import (
    build_view as build_view,
)
from engine.bootstrap.stores import (
    master_keys as master_keys,
)
from engine.bootstrap.stores import (
    meta_for as meta_for,
)
from engine.bootstrap.stores import (
    relay_tracker as relay_tracker,
)
from engine.bootstrap.stores import (
    store_env as store_env,
)
from engine.bootstrap.stores import (
    vault_for as vault_for,
)
from engine.domain.delivery.tracking import tracking_key
from engine.domain.journeys.journey import Journey
from engine.domain.leads.segments import SegmentRules
from engine.domain.shared.errors import JourneyValidationError
from engine.eventstore.coordination import NotInitialisedError, init_lock
from engine.settings import Settings

#: The meta entries ``db init`` writes once the identity index is the leads store's claims, and
#: once the leads' contact logs are the deliveries store's.
IDENTITIES_CLAIMED, CONTACTS_CLAIMED = "identities_claimed", "contacts_claimed"
#: ... and once the leads' journey histories (entries and exits) are the journeys store's.
HISTORIES_CLAIMED = "journey_histories_claimed"
#: ... and once the deliveries an older huoke requested and had not dispatched went to the schedule.
REQUESTS_HANDED_OVER = "requests_handed_over"
#: Every such entry: a store without one of them was made by an older huoke.
UPGRADES = (IDENTITIES_CLAIMED, CONTACTS_CLAIMED, HISTORIES_CLAIMED, REQUESTS_HANDED_OVER)


def init_database(settings: Settings) -> int:
    """Create every table and index huoke uses (idempotent; safe when several processes run it at
    once) and fix the partition count; returns it."""
    meta = meta_for(settings)
    with init_lock(meta.pg, settings.data_dir) as conn:
        # A new store is made with HUOKE_PARTITIONS partitions; a SQLite store made before SQLite
        # stores had partitions keeps its one (its followers' positions are kept under that).
        fresh = meta.pg is not None or not (settings.data_dir / "leads.db").exists()
        count = int(meta.get("partitions") or (settings.partitions if fresh else 1))
        meta.create(conn)
        with contextlib.suppress(FileExistsError):  # another process wrote it first
            _ensure_master_key(settings)
        vault = vault_for(settings)
        if vault is not None:
            vault.create_table()
        env = {
            name: store_env(settings, name, create=True) for name in (*APPS, "access", "referrals", "marketing", *VIEWS)
        }
        Leads(env["leads"], *_app_args(Leads)).close()
        journeys = Journeys(env["journeys"], *_app_args(Journeys))
        try:  # stores from before kept each lead's entries and exits as LeadJourneys events
            if meta.get(HISTORIES_CLAIMED) is None:
                journeys.migrate_histories()
                meta.put_default(HISTORIES_CLAIMED, "yes", conn)
        finally:
            journeys.close()
        deliveries = Deliveries(env["deliveries"], *_app_args(Deliveries))
        try:  # stores from before contact logs kept a ContactHistory aggregate per lead: index them
            if meta.get(CONTACTS_CLAIMED) is None:
                deliveries.migrate_contacts()
                meta.put_default(CONTACTS_CLAIMED, "yes", conn)
            if meta.get(REQUESTS_HANDED_OVER) is None:  # requests are taken up from the journeys now
                deliveries.hand_over_requests(Journeys.name, count)
                meta.put_default(REQUESTS_HANDED_OVER, "yes", conn)
        finally:
            deliveries.close()
        Access(env["access"], SystemClock()).close()
        Marketing(env["marketing"], SystemClock()).close()
        Referrals(env["referrals"], SystemClock(), b"").close()
        relay_tracker(settings, create=True).datastore.close()
        # Stores from before the identity index was the leads store's claims (its people were
        # LeadIdentity aggregates, under plain keys before the index was hashed): index them.
        leads = Leads(
            env["leads"],
            SegmentRules((), (), (), "set-up"),
            SystemClock(),
            settings.suppression_pepper.get_secret_value(),
            vault=vault,
        )
        try:
            if meta.get(IDENTITIES_CLAIMED) is None:
                leads.migrate_identities()
                meta.put_default(IDENTITIES_CLAIMED, "yes", conn)
        finally:
            leads.close()
        for name in VIEWS:
            _view(settings, name, env[name]).datastore.close()
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
    if any(meta.get(name) is None for name in UPGRADES):
        raise NotInitialisedError(
            "this store was made by an older huoke: "
            "run `huoke db init` once, which indexes its leads, their contacts and journeys"
        )
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


class FolderWorkshop:
    """The journeys folder of ``settings`` and its sandboxes (the ``JourneyFolder`` port)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def load(self, only: list[Path] | None = None) -> Definitions:
        return load_journey_definitions(self.settings, only)

    def journeys(self) -> tuple[list[tuple[Journey, dict[str, Any]]], str]:
        return folder_journeys(self.settings)

    def sandbox(self, journey: Journey, raw: dict[str, Any], start: Any, others: list[Any], models_from: Any) -> Any:
        return sandbox(self.settings, journey, raw, start, others, models_from=models_from)

    def fingerprint(self) -> str:
        return renderer_for(self.settings).fingerprint()
