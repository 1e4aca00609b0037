"""What operators and providers do to a message: delivery receipts, reviews of held
messages, cancelling what has not gone."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from engine.application.delivery.base import _ADDRESS, DeliveriesBase
from engine.application.leads.app import Leads
from engine.domain.delivery.delivery import Delivery
from engine.domain.shared.errors import DeliveryStateError
from engine.eventstore.saving import (
    fresh_get,
    retry_conflicts,
    save_batch,
)


class OperatorJobs(DeliveriesBase):
    """What operators and providers do to a message: delivery receipts, reviews of held
    messages, cancelling what has not gone."""

    def record_receipt(self, send_id: UUID, status: str, error_code: str, at: datetime) -> bool:
        """Record a provider's delivery receipt; False for an unknown send id."""

        def record() -> bool:
            try:
                delivery: Delivery = fresh_get(self, send_id)  # a worker may have written it since
            except AggregateNotFoundError:
                return False
            delivery.record_receipt(status, error_code, at)
            save_batch(self, [delivery])
            return True

        return retry_conflicts(self, record)

    def review(self, send_id: UUID, leads: Leads, by: str, note: str, left: bool) -> Delivery:
        """An operator's word on a message held in doubt: it did not leave (``left`` False: send
        it again, same Message-ID, consent checked again) or it did (recorded sent, never resent)."""

        def attempt() -> Delivery:
            try:
                d: Delivery = fresh_get(self, send_id)
            except AggregateNotFoundError:
                raise DeliveryStateError(f"no message {send_id}") from None
            if not d.held_for_review:
                raise DeliveryStateError(f"message {send_id} is not held for review ({d.outcome or 'pending'})")
            now = self._now_for(d)
            d.release(by, note, not left, now)
            if left:
                lead = leads.fresh_lead(d.lead_id)
                recipient = lead.contact.get(_ADDRESS.get(d.channel, "")) or ""
                d.mark_sent(recipient, "", "", "", f"confirmed by {by}" + (f": {note}" if note else ""), now)
            save_batch(self, [d])
            return d

        return retry_conflicts(self, attempt)

    def cancel_unsent(self, send_ids: Iterable[UUID], reason: str) -> int:
        """Settle as skipped, with ``reason``, every one of these messages that has not gone
        (deferred, held for review, or not yet tried); the number cancelled."""
        ids = list(send_ids)

        def cancel() -> int:
            pending = [d for d in map(self.get_delivery, ids) if d is not None and not d.is_settled]
            now = self.clock.now()
            for d in pending:
                d.mark_skipped(reason, max(now, d.requested_at))
            save_batch(self, pending)
            return len(pending)

        return retry_conflicts(self, cancel)

    def get_delivery(self, send_id: UUID) -> Delivery | None:
        try:
            delivery: Delivery = self.repository.get(send_id)
        except AggregateNotFoundError:
            return None
        return delivery


def held_messages(engine: Any) -> list[dict[str, Any]]:
    """Messages held in doubt after a crash, with where each was going (for an operator to check
    the channel's own log before releasing it)."""
    out = []
    for row in engine.schedule.review_holds():
        d = engine.deliveries.get_delivery(UUID(row["send_id"]))
        lead = engine.leads.get_lead(d.lead_id) if d is not None else None
        contact = lead.contact if lead is not None else {}
        address = contact.get("email" if row["channel"] == "email" else "phone")
        out.append({**row, "template": d.template if d else "", "lead_id": str(d.lead_id) if d else "", "to": address})
    return out
