"""The leads log's reactions to the other logs: journeys' lead updates, referral news and delivery effects."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.utils import get_topic

from engine.application.leads.base import EFFECT_TOPICS, UPDATE_TOPICS, LeadsBase
from engine.application.partitions import ALL, Partitions, Stop, never
from engine.application.projecting import drain, next_owned_page, next_page
from engine.domain.delivery.delivery import Delivery
from engine.domain.delivery.tracking import ClickKind
from engine.domain.leads.lead import Lead
from engine.domain.shared.values import Stage
from engine.eventstore import Tracking
from engine.eventstore.saving import (
    retry_conflicts,
    save_batch,
)


class ReactionJobs(LeadsBase):
    """The leads log's reactions to the other logs: journeys' lead updates, referral news and delivery effects."""

    def apply_journey_updates(
        self, journeys: Application[UUID], parts: Partitions = ALL, batch_size: int = 500, stop: Stop = never
    ) -> int:
        """Apply every Enrolment.LeadUpdateRequested (stage, tag) of owned partitions exactly once."""
        return drain(
            lambda: retry_conflicts(self, lambda: self._journey_updates_page(journeys, parts, batch_size)), stop
        )

    def _journey_updates_page(self, journeys: Application[UUID], parts: Partitions, batch_size: int) -> int | None:
        page = next_owned_page(self.recorder, journeys, UPDATE_TOPICS, parts, batch_size, lambda e: e.lead_id)
        if page is None:
            return None
        touched = self.current(e.lead_id for e in page.events)
        for e in page.events:
            lead = touched.get(e.lead_id) or self.get_lead(e.lead_id)
            why = f"journey step '{e.step}'"
            if e.stage:
                lead.advance_to(Stage(e.stage), why, e.at)
            if e.tag:
                lead.tag(e.tag, why, e.at)
            touched[lead.id] = lead
        save_batch(self, touched.values(), page.trackings)
        return len(page.events)

    def apply_referral_news(
        self, referrals: Application[UUID], parts: Partitions = ALL, batch_size: int = 500, stop: Stop = never
    ) -> int:
        """Follow the Referrals log (in the process that decides referrals: the owner of lead
        partition 0): a referee's application is news for the referrer, a paid reward for both
        sides. Journeys react to these lead events. Exactly once, across crashes."""
        if not parts.everything and 0 not in parts.owned:
            return 0
        from engine.domain.referrals.referral import Referral

        topics = [get_topic(Referral.RefereeApplied), get_topic(Referral.Paid)]

        def one_page() -> int | None:
            page = next_page(referrals.recorder, self.recorder.max_tracking_id(referrals.name), topics, batch_size)
            if page is None:
                return None
            touched: dict[UUID, Lead] = {}
            for note in page.notes:
                e: Any = referrals.mapper.to_domain_event(note)
                referral: Referral = referrals.repository.get(e.originator_id, version=e.originator_version)
                if isinstance(e, Referral.RefereeApplied):
                    suspicion = getattr(referrals, "suspicion", None)
                    if suspicion is not None and suspicion(referral, self):
                        continue  # would be held for review: no thank-you before a reviewer's word
                    lead = touched.get(referral.referrer_id) or self.fresh_lead(referral.referrer_id)
                    lead.friend_applied(referral.id, e.at)
                    touched[lead.id] = lead
                    continue
                for role, lead_id in (("referrer", referral.referrer_id), ("referee", referral.referee_id)):
                    lead = touched.get(lead_id) or self.fresh_lead(lead_id)
                    lead.referral_rewarded(referral.id, role, dict(e.referrer_reward if role == "referrer" else
                                                                   e.referee_reward), e.at)  # fmt: skip
                    touched[lead.id] = lead
            save_batch(self, touched.values(), Tracking(referrals.name, page.last))
            return len(page.notes)

        return drain(lambda: retry_conflicts(self, one_page, self._forget_cache), stop)

    def apply_delivery_effects(
        self,
        deliveries: Application[UUID],
        lead_of_send: Callable[[UUID], UUID],
        parts: Partitions = ALL,
        batch_size: int = 500,
        stop: Stop = never,
    ) -> int:
        """Follow the Deliveries log: a lead sent its first message moves from NEW to CONTACTED;
        an address refused for good is flagged on the lead; a person's click on a tracked link is
        recorded on the lead (and makes it engaged). Exactly once, across crashes."""

        def lead_of(e: Any) -> UUID:
            return UUID(str(e.lead_id)) if e.lead_id is not None else lead_of_send(e.originator_id)

        def one_page() -> int | None:
            page = next_owned_page(self.recorder, deliveries, EFFECT_TOPICS, parts, batch_size, lead_of)
            if page is None:
                return None
            lead_ids = [lead_of(e) for e in page.events]
            touched = self.current(lead_ids)
            for e, lead_id in zip(page.events, lead_ids, strict=True):
                lead = touched.get(lead_id) or self.get_lead(lead_id)
                if isinstance(e, Delivery.AddressBounced):
                    kind = "e-mail" if e.channel == "email" else "phone"
                    if lead.contact.get("email" if e.channel == "email" else "phone") == e.recipient:
                        lead.update(
                            {"contact_issues": [f"{kind} {e.recipient} bounced: {e.reason}"]},
                            {"channel": "bounce"},
                            e.at,
                        )
                elif isinstance(e, Delivery.Clicked):
                    if e.kind == ClickKind.HUMAN:  # a scanner's click is never engagement
                        lead.record_click(UUID(str(e.originator_id)), e.journey_id, e.step, e.template, e.link, e.at)
                elif lead.stage is Stage.NEW:
                    lead.advance_to(Stage.CONTACTED, "first message sent", e.at)
                touched[lead_id] = lead
            save_batch(self, touched.values(), page.trackings)
            return len(page.events)

        return drain(lambda: retry_conflicts(self, one_page), stop)
