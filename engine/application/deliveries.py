"""Deliveries: turn message requests into sends, effectively once.

Two steps, each exactly-once against a notification log:
1. ``request_messages`` records a Delivery (requested) for each Enrolment.MessageRequested,
   tracking the Journeys log position in the same transaction.
2. ``dispatch`` follows the Deliveries log's own Requested events in batches: checks consent
   and contact at send time, renders, reconciles sends already made (by send id), sends, and
   records sent / failed / skipped with the position reached, in one transaction.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import cast
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import ProcessRecorder, Tracking
from eventsourcing.utils import get_topic

from engine.application.journeys import Journeys
from engine.application.leads import Leads
from engine.application.ports import Channel, Clock, OutgoingMessage, RenderedMessage, Renderer, RenderError
from engine.application.projecting import next_page
from engine.application.saving import save_batch
from engine.domain.delivery import Delivery
from engine.domain.enrolment import Enrolment
from engine.domain.facts import lead_facts
from engine.domain.journey import Journey
from engine.domain.lead import Lead
from engine.domain.values import ConsentChannel, ConsentPurpose

REQUESTED_TOPICS = [get_topic(Enrolment.MessageRequested)]
DELIVERY_TOPICS = [get_topic(Delivery.Requested)]


@dataclass(frozen=True)
class Sender:
    """Who marketing comes from, and how opt-out links are made."""

    name: str
    email: str
    postal_address: str
    unsubscribe_url: str
    unsubscribe_secret: str
    default_locale: str


def unsubscribe_token(secret: str, lead_id: UUID, channel: str) -> str:
    """A signature binding (lead, channel) so a link cannot opt out someone else."""
    mac = hmac.new(secret.encode(), f"{lead_id}:{channel}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:18]).decode()


def check_unsubscribe_token(secret: str, lead_id: UUID, channel: str, token: str) -> bool:
    return hmac.compare_digest(unsubscribe_token(secret, lead_id, channel), token)


@dataclass
class DispatchReport:
    """Counts of what one dispatch pass did."""

    sent: int = 0
    failed: int = 0
    skipped: int = 0
    reconciled: int = 0
    deferred: int = 0


class Deliveries(Application[UUID]):
    """One Delivery aggregate per send id; its log is the outbox of record."""

    def __init__(
        self,
        env: dict[str, str],
        clock: Clock,
        renderer: Renderer,
        channels: Mapping[str, Channel],
        sender: Sender,
        definition: Callable[[str, int], Journey] | None = None,
    ) -> None:
        super().__init__(env)
        self.clock = clock
        self.renderer = renderer
        self.channels = dict(channels)
        self.sender = sender
        self.definition = definition

    recorder: ProcessRecorder

    def construct_recorder(self) -> ProcessRecorder:
        return self.factory.process_recorder()

    def request_messages(self, journeys: Journeys, batch_size: int = 1000) -> int:
        """Record a requested Delivery for every new Enrolment.MessageRequested."""
        done = 0
        while True:
            page = next_page(
                journeys.recorder, self.recorder.max_tracking_id(journeys.name), REQUESTED_TOPICS, batch_size
            )
            if page is None:
                return done
            requested: list[Delivery] = []
            for note in page.notes:
                e = cast(Enrolment.MessageRequested, journeys.mapper.to_domain_event(note))
                enrolment = journeys.get_enrolment(e.originator_id)
                if enrolment is None:  # cannot happen: the request was recorded on it
                    raise LookupError(f"enrolment {e.originator_id} vanished")
                requested.append(
                    Delivery(
                        send_id=e.send_id,
                        lead_id=enrolment.lead_id,
                        enrolment_id=e.originator_id,
                        journey_id=enrolment.journey_id,
                        journey_version=enrolment.journey_version,
                        step=e.step,
                        channel=e.channel,
                        template=e.template,
                        reason=e.reason,
                        at=e.at,
                    )
                )
            save_batch(self, requested, Tracking(journeys.name, page.last))
            done += len(page.notes)

    def dispatch(self, leads: Leads, batch_size: int = 200) -> DispatchReport:
        """Send every requested, unsettled delivery; return what happened."""
        report = DispatchReport()
        while True:
            page = next_page(self.recorder, self.recorder.max_tracking_id(self.name), DELIVERY_TOPICS, batch_size)
            if page is None:
                return report
            deliveries: list[Delivery] = [self.repository.get(UUID(str(n.originator_id))) for n in page.notes]
            try:
                self._dispatch_batch([d for d in deliveries if not d.is_settled], leads, report)
                open_ = [d for d in deliveries if not d.is_settled]
                # Only advance past a batch once every delivery in it is settled: transient
                # failures keep the log position and are retried on the next run.
                save_batch(self, deliveries, None if open_ else Tracking(self.name, page.last))
            except Exception:
                self._repository = self.construct_repository()
                raise
            sent = [d for d in deliveries if d.outcome == "sent"]
            if sent:
                leads.mark_contacted([d.lead_id for d in sent], max(self._now_for(d) for d in sent))
            if open_:
                report.deferred += len(open_)
                return report

    def _now_for(self, d: Delivery) -> datetime:
        """Never record an outcome before its request (a virtual clock may lag an import)."""
        return max(self.clock.now(), d.requested_at)

    def _dispatch_batch(self, batch: list[Delivery], leads: Leads, report: DispatchReport) -> None:
        outgoing: dict[str, list[tuple[Delivery, OutgoingMessage]]] = {}
        for d in batch:
            now = self._now_for(d)
            channel = self.channels.get(d.channel)
            if channel is None:
                d.mark_failed(f"no {d.channel} channel is configured", permanent=True, at=now)
                report.failed += 1
                continue
            ref = channel.already_sent(d.id)
            if ref is not None:
                # Sent before a crash, outcome not recorded: reconcile, never resend.
                d.mark_sent("", "", "", "", ref, now)
                report.reconciled += 1
                continue
            lead = leads.get_lead(d.lead_id)
            reason = self.policy_refusal(lead, d.channel, self._purpose(d))
            if reason:
                d.mark_skipped(reason, now)
                report.skipped += 1
                continue
            try:
                message = self._compose(d, lead, now)
            except RenderError as e:
                d.mark_failed(f"template {d.template!r} could not render: {e}", permanent=True, at=now)
                report.failed += 1
                continue
            outgoing.setdefault(d.channel, []).append((d, message))
        for channel_name, items in outgoing.items():
            results = self.channels[channel_name].send_batch([m for _, m in items])
            for (d, m), result in zip(items, results, strict=True):
                if result.ok:
                    digest = hashlib.sha256((m.body.text + (m.body.html or "")).encode()).hexdigest()
                    d.mark_sent(m.to, m.body.locale, m.body.variant, digest, result.provider_ref, self._now_for(d))
                    report.sent += 1
                else:
                    d.mark_failed(result.reason, result.permanent, self._now_for(d))
                    report.failed += 1

    def _journey_vars(self, d: Delivery) -> dict[str, str]:
        return self.definition(d.journey_id, d.journey_version).vars if self.definition else {}

    def _purpose(self, d: Delivery) -> str:
        return self.definition(d.journey_id, d.journey_version).purpose if self.definition else "marketing"

    @staticmethod
    def policy_refusal(lead: Lead, channel: str, purpose: str = "marketing") -> str:
        """Why this message may not go out now ('' when it may). Checked at send time.

        Marketing needs marketing consent on the channel; service messages (about the lead's own
        application) need none, but still a valid contact.
        """
        if channel == "webhook":
            return ""  # goes to the lender's own systems, not to the lead
        consent_channel = ConsentChannel(channel)
        if purpose == "marketing" and not lead.has_consent(consent_channel, ConsentPurpose.MARKETING):
            state = lead.consents.get(f"{channel}:marketing")
            return "consent withdrawn" if state is False else f"no {channel} marketing consent"
        address = lead.contact.get("email" if channel == "email" else "phone")
        if not address:
            return f"no valid {'e-mail address' if channel == 'email' else 'phone number'}"
        return ""

    def unsubscribe_url(self, lead_id: UUID, channel: str) -> str:
        token = unsubscribe_token(self.sender.unsubscribe_secret, lead_id, channel)
        return f"{self.sender.unsubscribe_url}/{lead_id}/{channel}/{token}"

    def render_for(
        self, lead: Lead, channel: str, template: str, journey_vars: dict[str, str], now: datetime
    ) -> RenderedMessage:
        """Render one template for one lead, exactly as a send would."""
        facts = lead_facts(lead, now)
        context = {
            **journey_vars,
            **facts,
            "sender_name": self.sender.name,
            "postal_address": self.sender.postal_address,
            "unsubscribe_url": self.unsubscribe_url(lead.id, channel),
        }
        return self.renderer.render(channel, template, facts["audience"], facts["language"], context)

    def _compose(self, d: Delivery, lead: Lead, now: datetime) -> OutgoingMessage:
        unsubscribe = self.unsubscribe_url(lead.id, d.channel)
        body = self.render_for(lead, d.channel, d.template, self._journey_vars(d), now)
        to = {"email": lead.contact.get("email"), "sms": lead.contact.get("phone")}.get(d.channel) or ""
        return OutgoingMessage(send_id=d.id, channel=d.channel, to=to, body=body, unsubscribe_url=unsubscribe)

    def get_delivery(self, send_id: UUID) -> Delivery | None:
        from eventsourcing.application import AggregateNotFoundError

        try:
            delivery: Delivery = self.repository.get(send_id)
        except AggregateNotFoundError:
            return None
        return delivery
