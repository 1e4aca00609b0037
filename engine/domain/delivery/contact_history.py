"""What was sent to one lead, for frequency caps and spacing (kept with the deliveries).

``ContactLog`` is a lead's sends as the dispatcher reads them: each is recorded with the
``Delivery.Sent`` event that says so (the deliveries store keeps it as the lead's n-th contact,
so two writers of one lead's sends collide as versions of one aggregate would). Stores from
before it kept a ``ContactHistory`` aggregate per lead, one ``Contacted`` event per send, which
``db init`` indexes once and which stays here to read them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from engine.domain.shared.topics import keep_topics
from engine.domain.shared.values import derive_id


def contact_history_id(lead_id: UUID) -> UUID:
    return derive_id("contact-history", lead_id)


class Contact(NamedTuple):
    """One message sent to a lead."""

    channel: str
    purpose: str
    at: datetime
    journey_id: str  # "" when recorded before journeys were named: counted as another journey's
    send_id: UUID


@dataclass
class ContactLog:
    """Every message sent to one lead: ``sends`` as stored, then the ones recorded since
    (``recorded``), which are stored with the events of the send."""

    lead_id: UUID
    sends: list[Contact] = field(default_factory=list)
    recorded: list[Contact] = field(default_factory=list)

    def record(self, channel: str, purpose: str, send_id: UUID, at: datetime, journey_id: str = "") -> None:
        self.recorded.append(Contact(channel, purpose, at, journey_id, send_id))

    def stored_count(self) -> int:
        return len(self.sends)

    def take_recorded(self) -> list[Contact]:
        """The sends recorded since the log was read (now counted as stored)."""
        taken, self.recorded = self.recorded, []
        self.sends.extend(taken)
        return taken

    def last_from_another_journey(self, journey_id: str, purpose: str, since: datetime) -> tuple[str, datetime] | None:
        """The latest message for ``purpose`` after ``since`` from a journey other than
        ``journey_id`` (one recorded before journeys were named counts as another's)."""
        found = [
            (c.at, c.journey_id)
            for c in (*self.sends, *self.recorded)
            if c.purpose == purpose and c.at > since and (c.journey_id != journey_id or not c.journey_id)
        ]
        if not found:
            return None
        at, journey = max(found)
        return journey or "another journey", at

    def sent_since(self, channel: str, purpose: str, since: datetime) -> list[datetime]:
        """Times of the messages on ``channel`` for ``purpose`` after ``since``, oldest first."""
        return sorted(
            c.at
            for c in (*self.sends, *self.recorded)
            if c.channel == channel and c.purpose == purpose and c.at > since
        )


class ContactHistory(Aggregate):
    """Every message sent to one lead, as stores before ``ContactLog`` kept it (read only by
    the migration; nothing writes it now)."""

    class Opened(Aggregate.Created):
        lead_id: UUID

    class Contacted(Aggregate.Event):
        """v2 names the journey, so marketing from different journeys can be spaced apart."""

        class_version = 2
        channel: str
        purpose: str
        send_id: UUID
        at: datetime
        journey_id: str

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["journey_id"] = ""  # v1 did not record it: counted as another journey's

    @event(Opened)
    def __init__(self, lead_id: UUID) -> None:
        self.lead_id = lead_id
        #: (channel, purpose, time, journey) of every message sent.
        self.sends: list[tuple[str, str, datetime, str]] = []

    @staticmethod
    def create_id(lead_id: UUID, **_: Any) -> UUID:
        return contact_history_id(lead_id)

    @event(Contacted)
    def _contacted(self, channel: str, purpose: str, send_id: UUID, at: datetime, journey_id: str) -> None:
        self.sends.append((channel, purpose, at, journey_id))


keep_topics("engine.domain.contact_history", ContactHistory)
