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
        channel: str
        purpose: str
        send_id: UUID
        at: datetime

    @event(Opened)
    def __init__(self, lead_id: UUID) -> None:
        self.lead_id = lead_id
        self.sends: list[tuple[str, str, datetime]] = []

    @staticmethod
    def create_id(lead_id: UUID, **_: Any) -> UUID:
        return contact_history_id(lead_id)

    def record(self, channel: str, purpose: str, send_id: UUID, at: datetime) -> None:
        self._contacted(channel=channel, purpose=purpose, send_id=send_id, at=at)

    @event(Contacted)
    def _contacted(self, channel: str, purpose: str, send_id: UUID, at: datetime) -> None:
        self.sends.append((channel, purpose, at))

    def sent_since(self, channel: str, purpose: str, since: datetime) -> list[datetime]:
        """Times of the messages on ``channel`` for ``purpose`` after ``since``, oldest first."""
        return sorted(at for ch, p, at in self.sends if ch == channel and p == purpose and at > since)


keep_topics("engine.domain.contact_history", ContactHistory)
