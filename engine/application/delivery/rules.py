"""The contact rules a message meets at send time: consent and contact, the journey's exit, quiet
hours, caps, spacing, staleness."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from uuid import UUID

from eventsourcing.utils import get_topic

from engine.application.delivery.base import (
    ERASED_REFUSAL,
    DeliveriesBase,
    _Pass,
    _zone,
    country_of,
)
from engine.domain.delivery.contact_history import Contact, ContactHistory, ContactLog
from engine.domain.delivery.contact_policy import (
    cap_hold,
    spacing_hold,
    span_text,
    window_hold,
)
from engine.domain.delivery.delivery import Delivery
from engine.domain.journeys import interpreter
from engine.domain.journeys.decisions import Exit
from engine.domain.journeys.journey import SendStep
from engine.domain.leads.facts import lead_facts
from engine.domain.leads.lead import Lead
from engine.domain.shared.durations import zone_text
from engine.domain.shared.values import ConsentChannel, ConsentPurpose, consent_key
from engine.eventstore import Claim
from engine.eventstore.saving import add_claims, owned_claims


class RuleJobs(DeliveriesBase):
    """Whether a message may go now, and what holds it (the rules are the domain's)."""

    def _stale(self, d: Delivery, now: datetime) -> str:
        """Why a message held up by channel trouble (an outage, failed tries) is too late to send
        ('' when it is not, or its step says ``stale: send`` or ``reschedule``)."""
        late = now - d.requested_at
        if d.trouble_since is None or late <= self.retries.stale_after or self.definition is None:
            return ""
        step = self.definition(d.journey_id, d.journey_version).steps.get(d.step)
        if not isinstance(step, SendStep) or step.stale != "skip":
            return ""
        return (
            f"stale: {late.total_seconds() / 3600:.0f} h late, held up since "
            f"{zone_text(d.trouble_since, self.default_tz)} by {d.channel} trouble "
            f"(limit {span_text(self.retries.stale_after)}); the step says stale: skip"
        )

    def refusal(self, d: Delivery, lead: Lead, purpose: str, now: datetime) -> str:
        """Why this message may not go out now ('' when it may): consent and contact, then the
        journey's goal and exit criteria on the lead as it is now."""
        refused = self.policy_refusal(lead, d.channel, purpose)
        if refused or self.definition is None:
            return refused
        journey = self.definition(d.journey_id, d.journey_version)
        for decision in interpreter.goal_or_exit(journey, lead_facts(lead, now), None, None):
            if isinstance(decision, Exit):
                return f"lead left the journey before sending: {decision.reason} ({decision.detail})"
        return ""

    def _hold(
        self,
        d: Delivery,
        lead: Lead,
        purpose: str,
        now: datetime,
        state: _Pass,
    ) -> str:
        """Quiet hours, a frequency cap or another journey's marketing too recent (the domain's
        rules, ``contact_policy``): the message waits, or is skipped by its step's policy; ''
        when it may go now."""
        step = self._step(d)
        zone = _zone(lead.contact.get("timezone"))
        window = self.policy.window(country_of(lead.contact), d.channel, zone is not None)
        skip_window = step is not None and step.outside_window == "skip"
        hold = window_hold(window, zone or self.default_tz, now, skip_window) if d.channel != "webhook" else None
        if hold is None:
            cap = self.policy.cap(d.channel, purpose)
            sent = (
                self._history(d.lead_id, state.histories).sent_since(d.channel, purpose, now - cap.per) if cap else []
            )
            skip_capped = step is not None and step.when_capped == "skip"
            hold = cap_hold(cap, sent, state.planned.get((d.lead_id, d.channel), 0), now, skip_capped)
        if hold is None and purpose == "marketing":
            hold = spacing_hold(self.policy.spacing, self._last_marketing(d, now, state), now, self.default_tz,
                                step is not None and step.when_capped == "skip")  # fmt: skip
        if hold is None:
            return ""
        if hold.until is not None:
            d.defer(hold.until, hold.reason, now)
        return hold.reason

    def _last_marketing(self, d: Delivery, now: datetime, state: _Pass) -> tuple[str, datetime] | None:
        """Another journey's marketing to this lead within the spacing (one going out in this very
        pass counts as now); the first journey of a pass claims the lead for it."""
        spacing = self.policy.spacing
        if not spacing:
            return None
        other = state.marketing.get(d.lead_id)
        if other is not None and other != d.journey_id:
            return other, now
        last = self._history(d.lead_id, state.histories).last_from_another_journey(d.journey_id, "marketing",
                                                                                  now - spacing)  # fmt: skip
        if last is None:
            state.marketing.setdefault(d.lead_id, d.journey_id)
        return last

    def _priority(self, d: Delivery) -> int:
        return self.definition(d.journey_id, d.journey_version).priority if self.definition else 50

    def _load_histories(self, lead_ids: set[UUID], histories: dict[UUID, ContactLog]) -> None:
        """The contact logs of a batch's leads as committed now, in one query (the store's claims
        of each lead's sends), not a read per lead."""
        wanted = {_contacts_of(lead): lead for lead in lead_ids if lead not in histories}
        for lead in wanted.values():
            histories[lead] = ContactLog(lead)
        for claim in owned_claims(self, list(wanted)):
            histories[wanted[claim.owner]].sends.append(_contact_from(claim.value))

    def contact_log(self, lead_id: UUID) -> ContactLog:
        """Every message sent to the lead, oldest first, as committed now."""
        return self._history(lead_id, {})

    def _history(self, lead_id: UUID, histories: dict[UUID, ContactLog]) -> ContactLog:
        if lead_id not in histories:
            self._load_histories({lead_id}, histories)
        return histories[lead_id]

    @staticmethod
    def _contact_claims(logs: Iterable[ContactLog]) -> list[Claim]:
        """The claims that store the sends recorded in ``logs`` since they were read: the lead's
        n-th send under its own name, so a second writer of the same lead's n-th send fails."""
        claims = []
        for log in logs:
            owner, n = _contacts_of(log.lead_id), log.stored_count()
            claims += [
                Claim(f"{owner}:{n + i:06d}", _contact_value(c), owner) for i, c in enumerate(log.take_recorded(), 1)
            ]
        return claims

    def migrate_contacts(self) -> int:
        """Index the sends a store from before contact logs kept as ``ContactHistory`` aggregates
        (its n-th ``Contacted`` as the lead's n-th send); the number added. Idempotent."""
        opened, contacted = get_topic(ContactHistory.Opened), get_topic(ContactHistory.Contacted)
        lead_of: dict[UUID, UUID] = {}
        added, start = 0, 1
        while page := self.recorder.select_notifications(start, 1000, topics=[opened, contacted]):
            claims = []
            for note in page:
                e = self.mapper.to_domain_event(note)
                if note.topic == opened:
                    lead_of[e.originator_id] = e.lead_id  # type: ignore[attr-defined]
                    continue
                owner = _contacts_of(lead_of[e.originator_id])
                sent = Contact(e.channel, e.purpose, e.at, e.journey_id, e.send_id)  # type: ignore[attr-defined]
                claims.append(Claim(f"{owner}:{e.originator_version - 1:06d}", _contact_value(sent), owner))
            added += add_claims(self, claims)
            start = page[-1].id + 1
        return added

    @staticmethod
    def policy_refusal(lead: Lead, channel: str, purpose: str = "marketing") -> str:
        """Why this message may not go out now ('' when it may). Checked at send time.

        Marketing needs marketing consent on the channel; service messages (about the lead's own
        application) need none, but still a valid contact.
        """
        if lead.erased:
            return ERASED_REFUSAL
        if channel == "webhook":
            return ""  # goes to the lender's own systems, not to the lead
        consent_channel = ConsentChannel(channel)
        if purpose == "marketing" and not lead.has_consent(consent_channel, ConsentPurpose.MARKETING):
            state = lead.consents.get(consent_key(channel, ConsentPurpose.MARKETING))
            return "consent withdrawn" if state is False else f"no {channel} marketing consent"
        address = lead.contact.get("email" if channel == "email" else "phone")
        kind = "e-mail" if channel == "email" else "phone"
        if address and any(i.startswith(f"{kind} {address} bounced") for i in lead.contact_issues):
            return f"{kind} address bounced earlier"
        if not address:
            return f"no valid {'e-mail address' if channel == 'email' else 'phone number'}"
        return ""


def _contacts_of(lead_id: UUID) -> str:
    """The owner of a lead's contact claims (each named ``<owner>:<n>``, n from 1)."""
    return f"contact:{lead_id.hex}"


def _contact_value(c: Contact) -> str:
    return json.dumps(
        {
            "channel": c.channel,
            "purpose": c.purpose,
            "at": c.at.isoformat(),
            "journey": c.journey_id,
            "send": c.send_id.hex,
        },
        separators=(",", ":"),
    )


def _contact_from(value: str) -> Contact:
    d = json.loads(value)
    return Contact(d["channel"], d["purpose"], datetime.fromisoformat(d["at"]), d["journey"], UUID(d["send"]))
