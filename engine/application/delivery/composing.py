"""Composing a message: rendering its template for the lead, with its links and its
unsubscribe, confirm and referral addresses."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from uuid import UUID

from engine.application.delivery.base import DeliveriesBase
from engine.application.delivery.links import make_token
from engine.application.ports import (
    TRACK_CONTEXT,
    OutgoingMessage,
    RenderedMessage,
)
from engine.domain.delivery.delivery import Delivery
from engine.domain.leads.facts import lead_facts
from engine.domain.leads.lead import Lead
from engine.domain.referrals.codes import referral_code
from engine.domain.shared.values import ConsentPurpose, consent_key


class ComposingJobs(DeliveriesBase):
    """Rendering a message's template for the lead, with its links and addresses."""

    def unsubscribe_url(self, lead_id: UUID, channel: str) -> str:
        token = make_token(self.sender.link_keys, "unsubscribe", lead_id, channel, self.clock.now())
        return f"{self.sender.unsubscribe_url}/{lead_id}/{channel}/{token}"

    def inert_url(self, kind: str) -> str:
        """A link of a test send in place of ``kind`` (unsubscribe, confirm): huoke answers it
        with "this link is not valid" and changes nothing."""
        base = self.sender.unsubscribe_url if kind == "unsubscribe" else self.sender.unsubscribe_url.rsplit("/", 1)[0]
        return f"{base}/{'' if kind == 'unsubscribe' else 'confirm/'}test-send"

    def confirm_url(self, lead_id: UUID, channel: str) -> str:
        """The signed double opt-in link (served by huoke serve at /confirm/…)."""
        token = make_token(self.sender.link_keys, "confirm", lead_id, channel, self.clock.now())
        base = self.sender.unsubscribe_url.rsplit("/", 1)[0]
        return f"{base}/confirm/{lead_id}/{channel}/{token}"

    def referral_vars(self, lead_id: UUID) -> dict[str, str]:
        """The lead's own referral code and the link friends open (served by ``huoke serve``)."""
        code = referral_code(self.referral_key, lead_id)
        base = self.sender.unsubscribe_url.rsplit("/", 1)[0]
        return {"referral_code": code, "referral_link": f"{base}/r/{code}"}

    def render_for(
        self,
        lead: Lead,
        channel: str,
        template: str,
        journey_vars: dict[str, str],
        now: datetime,
        track: Callable[[str], str] | None = None,
        inert: bool = False,
    ) -> RenderedMessage:
        """Render one template for one lead, exactly as a send would (``track``: the send's
        tracked-link session, which every URL the template outputs passes through). ``inert``
        (a test send): the unsubscribe and confirmation links are shown but do nothing, so the
        seed inbox that clicks one never changes the real lead's consent."""
        facts = lead_facts(lead, now)
        context = {
            **journey_vars,
            **facts,
            "sender_name": self.sender.name,
            "postal_address": self.sender.postal_address,
            "unsubscribe_url": self.inert_url("unsubscribe") if inert else self.unsubscribe_url(lead.id, channel),
            "confirm_url": self.inert_url("confirm") if inert else self.confirm_url(lead.id, channel),
            **self.referral_vars(lead.id),
            **({TRACK_CONTEXT: track} if track is not None else {}),
        }
        return self.renderer.render(channel, template, facts["audience"], facts["language"], context)

    def _compose(self, d: Delivery, lead: Lead, now: datetime) -> OutgoingMessage:
        unsubscribe = self.unsubscribe_url(lead.id, d.channel)
        to = {"email": lead.contact.get("email"), "sms": lead.contact.get("phone")}.get(d.channel) or ""
        links: tuple[str, ...] = ()
        if self.tracker is not None and d.channel in ("email", "sms") and self._may_track(lead, d.channel):
            base = self.sender.unsubscribe_url.rsplit("/", 1)[0]
            own = (self.sender.unsubscribe_url, f"{base}/confirm/", f"{base}/r/")  # never tracked
            session = self.tracker.session(d.id, own)
            body = self.render_for(lead, d.channel, d.template, self._journey_vars(d), now, session.short)
            body, links = session.finish(body)
        else:
            body = self.render_for(lead, d.channel, d.template, self._journey_vars(d), now)
        return OutgoingMessage(
            send_id=d.id, channel=d.channel, to=to, body=body, unsubscribe_url=unsubscribe, links=links, at=now
        )

    @staticmethod
    def _may_track(lead: Lead, channel: str) -> bool:
        """Clicks are tracked unless the lead withdrew tracking on the channel (or was erased)."""
        return not lead.erased and lead.consents.get(consent_key(channel, ConsentPurpose.TRACKING)) is not False

    def _journey_vars(self, d: Delivery) -> dict[str, str]:
        return self.definition(d.journey_id, d.journey_version).vars if self.definition else {}
