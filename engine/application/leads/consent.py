"""Consent, tracking preferences, suppression, opt-outs and erasure of leads."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from engine.application.leads.base import LeadsBase, Outcome
from engine.domain.delivery.suppression import Suppression, contact_hash, suppression_id
from engine.domain.leads.lead import Lead
from engine.domain.leads.privacy import RETAINED
from engine.domain.shared.errors import HuokeError, InvalidLeadError
from engine.domain.shared.values import ConsentChannel, ConsentPurpose, JSONDict
from engine.eventstore import IntegrityError
from engine.eventstore.saving import (
    delete_snapshots,
    latest_versions,
    retry_conflicts,
    save_batch,
)


class ConsentJobs(LeadsBase):
    """Consent, tracking preferences, suppression, opt-outs and erasure of leads."""

    def _consent(self, lead: Lead, channel: str, granted: bool, source: str, at: datetime) -> None:
        ch = ConsentChannel(channel)
        if granted and ch is ConsentChannel.EMAIL and self.double_opt_in:
            lead.request_consent(ch, ConsentPurpose.MARKETING, source, "opt-in at capture; awaiting confirmation", at)
        elif granted:
            lead.grant_consent(ch, ConsentPurpose.MARKETING, source, "opt-in recorded at capture", at)
        else:
            lead.withdraw_consent(ch, ConsentPurpose.MARKETING, source, "no consent at capture", at)

    def confirm_consent(
        self,
        lead_id: UUID,
        channel: str,
        source: str,
        evidence: str,
        link_issued: datetime,
        at: datetime | None = None,
    ) -> str:
        """The lead confirmed a double opt-in (clicked a link issued at ``link_issued``): consent
        starts now — unless nothing awaits confirmation, or the person opted out (or was erased)
        after the link was sent. '' when consent is in force afterwards, else why not."""

        def attempt() -> str:
            lead = self.fresh_lead(lead_id)  # an opt-out just taken by another process counts
            ch, purpose = ConsentChannel(channel), ConsentPurpose.MARKETING
            refused = lead.check_confirmation(ch, purpose, link_issued)
            if refused:
                return "" if lead.has_consent(ch, purpose) and not lead.erased else refused
            lead.grant_consent(ch, purpose, source, evidence, at or self.clock.now())
            save_batch(self, [lead])
            return ""

        return str(retry_conflicts(self, attempt, self._forget_cache))

    def change_consent(
        self, lead_id: UUID, channel: str, purpose: str, grant: bool, source: str, evidence: str
    ) -> bool:
        """Consent given or withdrawn (``purpose`` marketing or tracking), with its evidence; a
        withdrawal applies before the next send and is always recorded. False: nothing changed."""
        if purpose == "tracking":
            return self.set_tracking(lead_id, channel, grant, source, evidence)
        if not grant:
            self.opt_out(lead_id, channel, source, evidence)
            return True
        if channel == "all":
            raise InvalidLeadError("channel", "grant consent one channel at a time (email, sms or phone)")
        return self.grant_consent(lead_id, channel, source, evidence)

    def set_tracking(
        self, lead_id: UUID, channel: str, allowed: bool, source: str, evidence: str, at: datetime | None = None
    ) -> bool:
        """Whether clicks on the lead's messages of ``channel`` ('all': every channel) may be
        tracked (withdrawn: links go out as written); False when nothing changed."""
        channels = [c for c in ConsentChannel if channel in ("all", c.value)]

        def attempt() -> bool:
            lead = self.fresh_lead(lead_id)
            moment = at or self.clock.now()
            purpose = ConsentPurpose.TRACKING
            changed = [
                lead.grant_consent(c, purpose, source, evidence, moment)
                if allowed
                else lead.withdraw_consent(c, purpose, source, evidence, moment)
                for c in channels
            ]
            save_batch(self, [lead])
            return any(changed)

        return bool(retry_conflicts(self, attempt, self._forget_cache))

    def grant_consent(
        self, lead_id: UUID, channel: str, source: str, evidence: str, at: datetime | None = None
    ) -> bool:
        """Marketing consent given with evidence (a signed form, a recorded call); False if it
        was already in force. A contact on the suppression list stays listed (it still blocks
        sends) until the opt-out itself is lifted."""
        if channel not in {c.value for c in ConsentChannel}:
            raise InvalidLeadError("channel", f"unknown channel {channel!r}: email, sms or phone")
        if not evidence.strip():
            raise InvalidLeadError("evidence", "consent needs its evidence (what the lead signed or said, where)")

        def attempt() -> bool:
            lead = self.fresh_lead(lead_id)
            granted = lead.grant_consent(
                ConsentChannel(channel), ConsentPurpose.MARKETING, source, evidence, at or self.clock.now()
            )
            save_batch(self, [lead])
            return granted

        return bool(retry_conflicts(self, attempt, self._forget_cache))

    def suppressed_contacts(self, contacts: Sequence[JSONDict]) -> list[bool]:
        """Whether each contact's phone or e-mail is on the suppression list, in one query for
        the batch (not a read per row), each contact hashed once."""
        ids = [
            [suppression_id(contact_hash(self.pepper, kind, c[kind])) for kind in ("phone", "email") if c.get(kind)]
            for c in contacts
        ]
        listed = set(latest_versions(self, {i for own in ids for i in own}))
        return [any(i in listed for i in own) for own in ids]

    def erase(self, lead_id: UUID, reason: str, by: str, at: datetime | None = None) -> Lead:
        """Forget a person (right to erasure) by crypto-shredding: every channel opted out and the
        contact kept on the suppression list as a keyed hash (never re-imported by accident), the
        erasure recorded with its reason, then the lead's data key deleted — every personal field
        of every event of the lead is unreadable from then on. What lending rules require stays
        (``RETAINED``)."""
        if self.vault is None:
            raise HuokeError("erasure needs encryption at rest: set HUOKE_MASTER_KEY (or run huoke db init)")
        at = at or self.clock.now()
        lead = self.fresh_lead(lead_id)
        if lead.erased:
            self.vault.erase(lead_id, at.isoformat())  # scrubs again (the first scrub may have waited in vain)
            return lead
        self.opt_out(lead_id, "all", "erasure", "erased on request", at)

        def attempt() -> Lead:
            current = self.fresh_lead(lead_id)
            current.erase(reason, by, list(RETAINED), at)
            save_batch(self, [current])
            return current

        erased: Lead = retry_conflicts(self, attempt, self._forget_cache)
        self.vault.erase(lead_id, at.isoformat())
        delete_snapshots(self, lead_id)
        self._forget_cache()
        return erased

    def opt_out(
        self,
        lead_id: UUID | None,
        channel: str,
        source: str,
        evidence: str,
        at: datetime | None = None,
        phone: str | None = None,
        email: str | None = None,
    ) -> Outcome:
        """Withdraw marketing consent on ``channel`` ('all' for every channel), effective before the next
        send, and list the contact so no import brings it back. Works even for an unknown contact."""
        at = at or self.clock.now()
        try:
            return retry_conflicts(
                self, lambda: self._opt_out(lead_id, channel, source, evidence, at, phone, email), self._forget_cache
            )
        except IntegrityError:
            return Outcome(lead_id, error="could not record the opt-out: concurrent writers kept conflicting")

    def _opt_out(
        self,
        lead_id: UUID | None,
        channel: str,
        source: str,
        evidence: str,
        at: datetime,
        phone: str | None,
        email: str | None,
    ) -> Outcome:
        lead = self.get_lead(lead_id) if lead_id else None
        channels = [c.value for c in ConsentChannel] if channel == "all" else [channel]
        touched: list[Any] = []
        if lead is not None:
            for ch in channels:
                lead.withdraw_consent(ConsentChannel(ch), ConsentPurpose.MARKETING, source, evidence, at)
            phone, email = phone or lead.contact.get("phone"), email or lead.contact.get("email")
            touched.append(lead)
        for kind, value, kind_channels in (("phone", phone, {"sms", "phone"}), ("email", email, {"email"})):
            if value and kind_channels & set(channels):
                digest = contact_hash(self.pepper, kind, value)
                try:
                    entry: Suppression = self.repository.get(suppression_id(digest))
                except AggregateNotFoundError:
                    entry = Suppression(digest=digest)
                for ch in sorted(kind_channels & set(channels)):
                    entry.suppress(ch, evidence, source, at)
                touched.append(entry)
        save_batch(self, touched)
        return Outcome(lead.id if lead else None, changed=bool(touched))
