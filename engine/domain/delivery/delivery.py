"""The Delivery aggregate: one message's effect, recorded before it leaves and after."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from engine.domain.delivery.delivery_state import DeliveryState
from engine.domain.delivery.responses import ResponseDecisions
from engine.domain.shared.errors import DeliveryStateError
from engine.domain.shared.folding import apply_decision, decision_of, told_decision
from engine.domain.shared.topics import keep_topics
from engine.domain.shared.values import DeliveryOutcome


#: Transient failures (4xx, connection errors) retried on later runs before giving up.
class Delivery(ResponseDecisions, DeliveryState, Aggregate):
    """A requested message: requested → sent | failed | skipped. Its id is the send id."""

    class Requested(Aggregate.Created):
        """v2: the dispatcher takes a request up in the pass that decides on it, and records the
        request with that first decision in one event: a message handed to its channel at once
        with its dispatch marker (``dispatching_at``, with where its tracked links lead), one
        held or stopped at once with that ``first`` decision (the fields of the ``Deferred`` or
        ``Skipped`` it would have been, and its ``event`` name; ``told`` gives it back as that
        event), where each was ``Requested`` and then the other.

        v3: ``request_position``, the version of the enrolment's event that asked for it: messages
        of steps reached at the same moment go in the order of their steps (0 in a store from
        before: they go by send id, as they did)."""

        class_version = 3
        send_id: UUID
        lead_id: UUID
        enrolment_id: UUID
        journey_id: str
        journey_version: int
        step: str
        channel: str
        template: str
        reason: str
        at: datetime
        dispatching_at: datetime | None
        links: list[str]
        first: dict[str, Any] | None
        request_position: int

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["dispatching_at"], state["links"], state["first"] = None, [], None

        @staticmethod
        def upcast_v2_v3(state: dict[str, Any]) -> None:
            state["request_position"] = 0

    class Sent(Aggregate.Event):
        """v2 names the lead, so whoever follows the sends (Leads: first contact) can tell the
        lead's partition without loading the delivery."""

        class_version = 2
        lead_id: UUID | None
        journey_id: str
        step: str
        channel: str
        recipient: str
        locale: str
        variant: str
        content_sha256: str
        provider_ref: str
        at: datetime

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["lead_id"] = None  # v1 did not record it: the delivery itself knows

    class Failed(Aggregate.Event):
        journey_id: str
        step: str
        channel: str
        reason: str
        permanent: bool
        at: datetime

    class Deferred(Aggregate.Event):
        journey_id: str
        step: str
        channel: str
        until: datetime
        reason: str
        transient: bool
        at: datetime

    class Dispatching(Aggregate.Event):
        """v2 names the lead and keeps the message's tracked links (the destinations its short
        links redirect to, in order; sealed with the lead's key), so a click on any of them is
        resolved from the delivery itself."""

        class_version = 2
        lead_id: UUID | None
        attempt: int
        links: list[str]
        at: datetime

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["lead_id"] = None
            state["links"] = []

    class ReceiptRecorded(Aggregate.Event):
        status: str
        error_code: str
        at: datetime

    class AddressBounced(Aggregate.Event):
        """The provider refused the address itself: the lead's address is flagged (by Leads,
        following this event), so nothing more is sent to it."""

        lead_id: UUID
        channel: str
        recipient: str
        reason: str
        at: datetime

    class Skipped(Aggregate.Event):
        journey_id: str
        step: str
        channel: str
        reason: str
        at: datetime

    class HeldForReview(Aggregate.Event):
        """In doubt after a crash under ``HUOKE_IN_DOUBT=hold``: nobody knows whether it left; it
        waits for an operator (``huoke messages release`` or ``settle``), never resent by itself."""

        journey_id: str
        step: str
        channel: str
        reason: str
        at: datetime

    class Released(Aggregate.Event):
        """An operator's word on a held message: it did not leave and goes out again (``resend``,
        same Message-ID), or it did leave (recorded sent next, never resent)."""

        journey_id: str
        step: str
        channel: str
        by: str
        note: str
        resend: bool
        at: datetime

    class Clicked(Aggregate.Event):
        """A tracked link of the message was followed: by a person or by a machine (``kind``,
        with the rule that decided it). Recorded once per link and kind: a repeated or replayed
        request changes nothing. Names the lead and the step, for the followers (Leads:
        engagement; the journeys: waits for a click) and the reports."""

        lead_id: UUID
        journey_id: str
        step: str
        channel: str
        template: str
        link: int
        url: str
        kind: str
        reason: str
        at: datetime

    class Converted(Aggregate.Event):
        """An application came through a tracked link of this message: the lender's site sent
        back the link's reference with it (last-click attribution, exact)."""

        lead_id: UUID
        journey_id: str
        step: str
        channel: str
        template: str
        application_id: str
        at: datetime

    class Opened(Aggregate.Event):
        """The open pixel of an HTML e-mail was fetched (optional, and unreliable: privacy
        features of mail clients fetch it for every message). Once per message."""

        lead_id: UUID
        journey_id: str
        step: str
        at: datetime

    @event(Requested)
    def __init__(
        self,
        send_id: UUID,
        lead_id: UUID,
        enrolment_id: UUID,
        journey_id: str,
        journey_version: int,
        step: str,
        channel: str,
        template: str,
        reason: str,
        at: datetime,
        dispatching_at: datetime | None = None,
        links: list[str] | None = None,
        first: dict[str, Any] | None = None,
        request_position: int = 0,
    ) -> None:
        self.start(send_id, lead_id, enrolment_id, journey_id, journey_version, step, channel, template, reason, at)
        self.request_position = request_position
        if dispatching_at is not None:
            self._mark_dispatching(1, list(links or []))
        apply_decision(self, first, _FIRST)

    @staticmethod
    def create_id(send_id: UUID, **_: Any) -> UUID:
        return send_id

    @property
    def is_settled(self) -> bool:
        return self.outcome is not None

    def mark_sent(
        self, recipient: str, locale: str, variant: str, content_sha256: str, provider_ref: str, at: datetime
    ) -> None:
        """Record that the channel accepted the message (no-op once settled)."""
        if self.is_settled:
            return
        self._sent(
            lead_id=self.lead_id,
            journey_id=self.journey_id,
            step=self.step,
            channel=self.channel,
            recipient=recipient,
            locale=locale,
            variant=variant,
            content_sha256=content_sha256,
            provider_ref=provider_ref,
            at=at,
        )

    @event(Sent)
    def _sent(
        self,
        lead_id: UUID | None,
        journey_id: str,
        step: str,
        channel: str,
        recipient: str,
        locale: str,
        variant: str,
        content_sha256: str,
        provider_ref: str,
        at: datetime,
    ) -> None:
        self.outcome = DeliveryOutcome.SENT
        self.pending_attempt = False
        self.sent_at = at

    def mark_failed(self, reason: str, permanent: bool, at: datetime) -> None:
        """Record a failure; a transient one leaves the delivery open for a retry."""
        if self.is_settled:
            return
        self._failed(
            journey_id=self.journey_id, step=self.step, channel=self.channel, reason=reason, permanent=permanent, at=at
        )

    @event(Failed)
    def _failed(self, journey_id: str, step: str, channel: str, reason: str, permanent: bool, at: datetime) -> None:
        self.pending_attempt = False
        if permanent:
            self.outcome = DeliveryOutcome.FAILED
        else:
            self.transient_failures += 1
            self.trouble_since = self.trouble_since or at

    def defer(self, until: datetime, reason: str, at: datetime, transient: bool = False) -> None:
        """Hold the message until ``until`` (quiet hours, a cap, or a retry after a transient failure)."""
        if self.is_settled:
            return
        self._deferred(
            journey_id=self.journey_id,
            step=self.step,
            channel=self.channel,
            until=until,
            reason=reason,
            transient=transient,
            at=at,
        )

    @event(Deferred)
    def _deferred(
        self, journey_id: str, step: str, channel: str, until: datetime, reason: str, transient: bool, at: datetime
    ) -> None:
        self.deferred_until = until
        self.pending_attempt = False
        if transient:
            self.transient_failures += 1
            self.trouble_since = self.trouble_since or at

    def dispatching(self, at: datetime, links: list[str] | None = None) -> None:
        """Recorded just before the message is handed to the channel: after a crash, a delivery
        with this and no outcome is *in doubt* and is reconciled by its id, not blindly resent.
        ``links``: where the message's tracked links lead (link 1 first)."""
        self._dispatching(lead_id=self.lead_id, attempt=self.attempts + 1, links=list(links or []), at=at)

    @event(Dispatching)
    def _dispatching(self, lead_id: UUID | None, attempt: int, links: list[str], at: datetime) -> None:
        self._mark_dispatching(attempt, links)

    def _mark_dispatching(self, attempt: int, links: list[str]) -> None:
        self.attempts = attempt
        self.pending_attempt = True
        if links:
            self.links = links

    @property
    def unsaved_request(self) -> bool:
        """Requested in this process and not stored yet, nothing else decided on it."""
        return self.version == 1 and len(self.pending_events) == 1

    def requested_dispatching(self, at: datetime, links: list[str] | None = None) -> Delivery:
        """This delivery, requested and not stored yet, as one that is handed to its channel now
        (``dispatching`` in its request): one event where there were two. The caller uses the
        delivery returned in its place."""
        if not self.unsaved_request:
            raise ValueError(f"delivery {self.id} is stored already: mark it dispatching")
        [requested] = self.collect_events()
        return _requested_again(requested, dispatching_at=at, links=list(links or []))

    def link(self, n: int) -> str | None:
        """Where tracked link ``n`` (from 1) of this message leads; None if it has no such link."""
        links: list[str] = getattr(self, "links", [])
        return links[n - 1] if 1 <= n <= len(links) else None

    @property
    def in_doubt(self) -> bool:
        """Handed to the channel with no outcome recorded since (a crash came in between)."""
        return self.outcome is None and self.pending_attempt

    def record_receipt(self, status: str, error_code: str, at: datetime) -> bool:
        """What the provider later said about delivery (delivered, undelivered, failed …); False
        for a status already recorded (a provider retry, or a replayed callback)."""
        if status in self.receipts:
            return False
        self._receipt_recorded(status=status, error_code=error_code, at=at)
        return True

    @event(ReceiptRecorded)
    def _receipt_recorded(self, status: str, error_code: str, at: datetime) -> None:
        self.receipt = status
        self.receipts.add(status)

    def flag_bounced(self, recipient: str, reason: str, at: datetime) -> None:
        """Record that ``recipient`` was refused for good (after a permanent failure)."""
        self._address_bounced(lead_id=self.lead_id, channel=self.channel, recipient=recipient, reason=reason, at=at)

    @event(AddressBounced)
    def _address_bounced(self, lead_id: UUID, channel: str, recipient: str, reason: str, at: datetime) -> None:
        self.bounced = recipient

    def hold_for_review(self, reason: str, at: datetime) -> None:
        if self.is_settled or self.held_for_review:
            return
        self._held_for_review(journey_id=self.journey_id, step=self.step, channel=self.channel, reason=reason, at=at)

    @event(HeldForReview)
    def _held_for_review(self, journey_id: str, step: str, channel: str, reason: str, at: datetime) -> None:
        self.held_for_review = True
        self.pending_attempt = False

    def release(self, by: str, note: str, resend: bool, at: datetime) -> None:
        """The operator's word: send it again (it did not leave), or not (it did: record it sent next)."""
        if not self.held_for_review:
            raise DeliveryStateError(f"message {self.id} is not held for review")
        self._released(
            journey_id=self.journey_id, step=self.step, channel=self.channel, by=by, note=note, resend=resend, at=at
        )

    @event(Released)
    def _released(
        self, journey_id: str, step: str, channel: str, by: str, note: str, resend: bool, at: datetime
    ) -> None:
        self.held_for_review = False
        if resend:
            self.deferred_until = at

    @event(Clicked)
    def _clicked(
        self,
        lead_id: UUID,
        journey_id: str,
        step: str,
        channel: str,
        template: str,
        link: int,
        url: str,
        kind: str,
        reason: str,
        at: datetime,
    ) -> None:
        self.clicks.add((link, kind))

    @event(Converted)
    def _converted(
        self, lead_id: UUID, journey_id: str, step: str, channel: str, template: str, application_id: str, at: datetime
    ) -> None:
        self.conversions.add(application_id)

    @event(Opened)
    def _opened(self, lead_id: UUID, journey_id: str, step: str, at: datetime) -> None:
        self.opened = True

    def mark_skipped(self, reason: str, at: datetime) -> None:
        """Record that policy (consent, contact) stopped the message, with the reason."""
        if self.is_settled:
            return
        self._skipped(journey_id=self.journey_id, step=self.step, channel=self.channel, reason=reason, at=at)

    @event(Skipped)
    def _skipped(self, journey_id: str, step: str, channel: str, reason: str, at: datetime) -> None:
        self.outcome = DeliveryOutcome.SKIPPED
        self.pending_attempt = False

    def with_first_decision(self) -> Delivery:
        """This delivery, requested in this pass and then held (deferred) or stopped (skipped)
        at once, as one request recording that decision (``Requested.first``): one event where
        there were two. Itself when it is anything else. The caller stores the one returned."""
        if self.version != 2 or len(self.pending_events) != 2:
            return self
        requested, decided = self.pending_events
        if not isinstance(requested, Delivery.Requested) or not isinstance(
            decided, Delivery.Deferred | Delivery.Skipped
        ):
            return self
        self.collect_events()
        return _requested_again(requested, first=decision_of(decided))


def request_order(d: Delivery) -> tuple[datetime, int, str]:
    """The order an enrolment's messages go in: by when they were requested; those requested at
    the same moment by their steps' order (their requests' places in the enrolment's log), then
    by send id. The schedule view's ``open_before`` keeps the same order."""
    return (d.requested_at, d.request_position, str(d.id))


def _requested_again(r: Any, **recorded: Any) -> Delivery:
    """A new Delivery made from the ``Requested`` of one not stored yet, recording ``recorded``
    with it (its dispatch marker, or its first decision)."""
    return Delivery(
        send_id=r.originator_id, lead_id=r.lead_id, enrolment_id=r.enrolment_id, journey_id=r.journey_id,
        journey_version=r.journey_version, step=r.step, channel=r.channel, template=r.template,
        reason=r.reason, at=r.at, request_position=r.request_position, **recorded,
    )  # fmt: skip


def told(e: Any) -> list[Any]:
    """A delivery's stored event as the events it tells: a request with its first decision is
    the request and that decision (a ``Deferred`` or ``Skipped``, rebuilt for readers: the
    schedule, the funnel, the why-trail); any other event is itself."""
    return told_decision(e, _FIRST) if isinstance(e, Delivery.Requested) else [e]


#: The decisions a request can record with it.
_FIRST: dict[str, type[Any]] = {"Deferred": Delivery.Deferred, "Skipped": Delivery.Skipped}

keep_topics("engine.domain.delivery", Delivery)


#: Personal fields of Delivery events, sealed with the lead's own key (named by ``lead_id``),
#: and what a reader gets once the lead is erased.
PII_FIELDS: dict[type[Any], dict[str, Any]] = {
    Delivery.Sent: {"recipient": "(erased)"},
    Delivery.AddressBounced: {"recipient": "(erased)"},
    Delivery.Clicked: {"url": ""},  # a template may put something personal in a URL
    Delivery.Dispatching: {"links": []},
    Delivery.Requested: {"links": []},  # v2: a request recorded with its dispatch marker
}
