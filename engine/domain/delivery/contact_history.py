"""ContactHistory: what was sent to one lead, for frequency caps (kept with the deliveries)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from engine.domain.shared.topics import keep_topics
from engine.domain.shared.values import derive_id


def contact_history_id(lead_id: UUID) -> UUID:
    return derive_id("contact-history", lead_id)


class ContactHistory(Aggregate):
    """Every message sent to one lead: channel, purpose and time."""

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

    def record(self, channel: str, purpose: str, send_id: UUID, at: datetime, journey_id: str = "") -> None:
        self._contacted(channel=channel, purpose=purpose, send_id=send_id, at=at, journey_id=journey_id)

    @event(Contacted)
    def _contacted(self, channel: str, purpose: str, send_id: UUID, at: datetime, journey_id: str) -> None:
        self.sends.append((channel, purpose, at, journey_id))

    def last_from_another_journey(self, journey_id: str, purpose: str, since: datetime) -> tuple[str, datetime] | None:
        """The latest message for ``purpose`` after ``since`` from a journey other than
        ``journey_id`` (one recorded before journeys were named counts as another's)."""
        found = [(at, j) for _, p, at, j in self.sends if p == purpose and at > since and (j != journey_id or not j)]
        if not found:
            return None
        at, journey = max(found)
        return journey or "another journey", at

    def sent_since(self, channel: str, purpose: str, since: datetime) -> list[datetime]:
        """Times of the messages on ``channel`` for ``purpose`` after ``since``, oldest first."""
        return sorted(at for ch, p, at, _ in self.sends if ch == channel and p == purpose and at > since)


keep_topics("engine.domain.contact_history", ContactHistory)
