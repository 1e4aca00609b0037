"""The delivery application's foundation: the outbox of record, its settings, passes and reports."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from eventsourcing.utils import get_topic

from engine.application.delivery.links import LinkKeys
from engine.application.ports import (
    Channel,
    Clock,
    LinkTracker,
    PiiVault,
    Renderer,
)
from engine.domain.delivery.contact_history import ContactLog
from engine.domain.delivery.contact_policy import (
    DEFAULT_POLICY,
    ContactPolicy,
)
from engine.domain.delivery.delivery import PII_FIELDS, Delivery
from engine.domain.journeys.enrolment import Enrolment
from engine.domain.journeys.journey import Journey, SendStep
from engine.domain.shared.durations import backoff
from engine.eventstore import Mapper, ProcessRecorder
from engine.eventstore.saving import (
    sealing_mapper,
)
from engine.eventstore.values import StoreApplication

REQUESTED_TOPICS = [get_topic(Enrolment.MessageRequested)]
DELIVERY_TOPICS = [get_topic(Delivery.Requested)]


@dataclass(frozen=True)
class Sender:
    """Who marketing comes from, and how opt-out links are made."""

    name: str
    email: str
    postal_address: str
    unsubscribe_url: str
    #: Signs the unsubscribe and confirmation links (and still accepts links of older keys).
    link_keys: LinkKeys
    default_locale: str


@dataclass(frozen=True)
class Retries:
    """How long a message keeps being retried, how a down channel is probed, and what happens to
    a message that may have left before a crash (``resend`` with the same Message-ID, which
    receivers de-duplicate, or ``hold``: never risk a duplicate, record it held for review)."""

    retry_for: timedelta = timedelta(hours=24)
    probe_every: timedelta = timedelta(minutes=2)
    in_doubt: str = "resend"
    #: A message held up this long by channel trouble follows its step's ``stale`` policy.
    stale_after: timedelta = timedelta(hours=24)


def retry_delay(send_id: UUID, attempt: int) -> timedelta:
    """A message's wait before its next try: 5 min, 10, 20… capped at 6 h, ±20% (deterministic per send)."""
    return backoff(attempt, timedelta(minutes=5), timedelta(hours=6), f"{send_id}{attempt}")


#: Where a channel's messages go, in the lead's contact details.
_ADDRESS = {"email": "email", "sms": "phone"}


def country_of(contact: dict[str, Any]) -> str | None:
    """The lead's country for contact rules: as captured, else the phone number's (E.164)."""
    if contact.get("country"):
        return str(contact["country"]).upper()
    phone = contact.get("phone")
    return _region_of(str(phone)) if phone else None


@lru_cache(maxsize=4096)
def _region_of(phone: str) -> str | None:
    """An E.164 number's country (parsing one took 0.1 ms, and every send asks for it)."""
    try:
        region = phonenumbers.region_code_for_number(phonenumbers.parse(phone, None))
    except phonenumbers.NumberParseException:
        return None
    return region if region and region != "ZZ" else None


def _zone(name: str | None) -> ZoneInfo | None:
    try:
        return ZoneInfo(name) if name else None
    except (ZoneInfoNotFoundError, ValueError):
        return None


@dataclass
class DispatchReport:
    """Counts of what one dispatch pass did."""

    requested: int = 0  # requests taken up from the journeys
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    reconciled: int = 0
    deferred: int = 0
    held: int = 0  # in doubt, held for an operator (HUOKE_IN_DOUBT=hold)

    def add(self, other: DispatchReport) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    @property
    def moved(self) -> int:
        return sum(getattr(self, f.name) for f in fields(self))


#: How long after the earlier message of its enrolment is next due a later one is tried again.
ORDER_GAP = timedelta(minutes=2)
#: The schedule view's look-up of each send's earlier unsettled messages, for (send id,
#: enrolment id, requested at, request position) each.
OpenBefore = Callable[[Sequence[tuple[UUID, UUID, datetime, int]]], dict[UUID, list[tuple[UUID, datetime | None]]]]


@dataclass
class _Pass:
    """What one dispatch pass keeps while it decides: counts, contact histories, and messages
    already planned for a lead in this pass (for caps)."""

    report: DispatchReport
    histories: dict[UUID, ContactLog] = field(default_factory=dict)
    planned: dict[tuple[UUID, str], int] = field(default_factory=dict)
    lead_versions: dict[UUID, int] = field(default_factory=dict)  # per send: the lead's version decided on
    marketing: dict[UUID, str] = field(default_factory=dict)  # lead -> journey of a marketing message this pass
    going: set[UUID] = field(default_factory=set)  # sends handed to a channel in this pass
    batch: dict[UUID, Delivery] = field(default_factory=dict)  # the messages this pass decides on


class DeliveriesBase(StoreApplication):
    """One Delivery aggregate per send id; its log is the outbox of record."""

    recorder: ProcessRecorder

    def __init__(
        self,
        env: dict[str, str],
        clock: Clock,
        renderer: Renderer,
        channels: Mapping[str, Channel],
        sender: Sender,
        definition: Callable[[str, int], Journey] | None = None,
        policy: ContactPolicy = DEFAULT_POLICY,
        default_tz: str = "Asia/Shanghai",
        retries: Retries = Retries(),
        vault: PiiVault | None = None,
        referral_key: bytes = b"",
        tracker: LinkTracker | None = None,
    ) -> None:
        self.vault = vault  # before the application builds its mapper
        super().__init__(env)
        #: Rewrites messages' links to tracked links (None: links go out as written).
        self.tracker = tracker
        self.referral_key = referral_key
        self.retries = retries
        #: Channels found unreachable: when they went down and when to try one message again.
        self.down: dict[str, tuple[datetime, datetime, str]] = {}
        self.clock = clock
        self.renderer = renderer
        self.channels = dict(channels)
        self.sender = sender
        self.definition = definition
        self.policy = policy
        self.default_tz = ZoneInfo(default_tz)
        #: Earlier unsettled messages of each send's enrolment (the delivery schedule view; None:
        #: only the messages of one pass are kept in order).
        self.open_before: OpenBefore | None = None

    def construct_recorder(self) -> ProcessRecorder:
        return self.factory.process_recorder()

    def construct_mapper(self) -> Mapper[UUID]:
        """Recipients are sealed with their lead's own key when a vault is configured."""
        return sealing_mapper(super().construct_mapper(), self.vault, PII_FIELDS, owner="lead_id")

    def finished(self, aggregate: Any) -> bool:
        """A settled message is read again only for what its recipient does with it (a click, a
        bounce), rarely: the store serves those."""
        return isinstance(aggregate, Delivery) and aggregate.is_settled

    def _now_for(self, d: Delivery) -> datetime:
        """Never record an outcome before its request (a virtual clock may lag an import)."""
        return max(self.clock.now(), d.requested_at)

    def _purpose(self, d: Delivery) -> str:
        return self.definition(d.journey_id, d.journey_version).purpose if self.definition else "marketing"

    def _step(self, d: Delivery) -> SendStep | None:
        if self.definition is None:
            return None
        step = self.definition(d.journey_id, d.journey_version).steps.get(d.step)
        return step if isinstance(step, SendStep) else None


#: Why nothing goes to (or about) an erased person.
ERASED_REFUSAL = "erased: the person asked to be erased"
