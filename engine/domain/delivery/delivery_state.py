"""Everything a Delivery knows, typed: the one list of a message's state as its events left it."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID


class DeliveryState:
    """One message's state."""

    lead_id: UUID
    enrolment_id: UUID
    journey_id: str
    journey_version: int
    step: str
    channel: str
    template: str
    reason: str
    requested_at: datetime
    #: Its request's place in the enrolment's log: of messages requested at the same moment, the
    #: earlier step's goes first (0 when stored before this was recorded).
    request_position: int
    outcome: str | None
    transient_failures: int
    deferred_until: datetime | None
    attempts: int
    #: A dispatch marker with no outcome or retry after it: the message may be on the wire.
    pending_attempt: bool
    #: When its first try failed or its channel was first found down (retries are bounded by time).
    trouble_since: datetime | None
    #: Waiting for an operator's word on an in-doubt send (see HeldForReview).
    held_for_review: bool
    #: The provider's receipts recorded (each status once: a replayed callback changes nothing).
    receipts: set[str]
    #: When the message left (clicks sooner than a person could are a machine's).
    sent_at: datetime | None
    #: (link, kind) of the clicks recorded, and whether the open pixel was fetched.
    clicks: set[tuple[int, str]]
    opened: bool
    #: Where the message's tracked links lead (recorded with the dispatch marker).
    links: list[str]
    #: Applications that came through its links.
    conversions: set[str]

    def start(
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
    ) -> None:
        """The state of a message just requested."""
        self.lead_id = lead_id
        self.enrolment_id = enrolment_id
        self.journey_id = journey_id
        self.journey_version = journey_version
        self.step = step
        self.channel = channel
        self.template = template
        self.reason = reason
        self.requested_at = at
        self.outcome = None
        self.transient_failures = 0
        self.deferred_until = None
        self.attempts = 0
        self.pending_attempt = False
        self.trouble_since = None
        self.held_for_review = False
        self.receipts = set()
        self.sent_at = None
        self.clicks = set()
        self.opened = False
        self.links = []
        self.conversions = set()
