"""How a lead's consent may change: a grant unless one is in force, a double opt-in request, a
withdrawal (recorded even with no grant on file), and whether a confirmation link may still start
consent. The Lead records what these decide (its ``_consent_…`` events)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from engine.domain.leads.state import LeadState
from engine.domain.shared.durations import utc_text
from engine.domain.shared.values import ConsentChannel, ConsentPurpose, consent_key


class ConsentDecisions(LeadState):
    """The Lead's consent rules (a mixin: the state and the events are the Lead's)."""

    if TYPE_CHECKING:

        def _consent_granted(self, channel: str, purpose: str, source: str, evidence: str, at: datetime) -> None: ...
        def _consent_requested(self, channel: str, purpose: str, source: str, evidence: str, at: datetime) -> None: ...
        def _consent_withdrawn(self, channel: str, purpose: str, source: str, evidence: str, at: datetime) -> None: ...

    def has_consent(self, channel: ConsentChannel, purpose: ConsentPurpose) -> bool:
        """Whether the latest recorded consent for (channel, purpose) is a grant."""
        return self.consents.get(consent_key(channel, purpose), False)

    def grant_consent(
        self,
        channel: ConsentChannel,
        purpose: ConsentPurpose,
        source: str,
        evidence: str,
        at: datetime,
    ) -> bool:
        """Record a grant unless consent is already in force."""
        if self.has_consent(channel, purpose):
            return False
        self._consent_granted(channel=channel.value, purpose=purpose.value, source=source, evidence=evidence, at=at)
        return True

    def request_consent(
        self, channel: ConsentChannel, purpose: ConsentPurpose, source: str, evidence: str, at: datetime
    ) -> bool:
        """Double opt-in: record the request; consent starts only when the lead confirms."""
        if self.has_consent(channel, purpose) or consent_key(channel, purpose) in self.pending_consents:
            return False
        self._consent_requested(channel=channel.value, purpose=purpose.value, source=source, evidence=evidence, at=at)
        return True

    def withdraw_consent(
        self,
        channel: ConsentChannel,
        purpose: ConsentPurpose,
        source: str,
        evidence: str,
        at: datetime,
    ) -> bool:
        """Record a withdrawal; an opt-out is recorded even if no grant was on file."""
        if self.consents.get(consent_key(channel, purpose)) is False:
            return False
        self._consent_withdrawn(channel=channel.value, purpose=purpose.value, source=source, evidence=evidence, at=at)
        return True

    def check_confirmation(self, channel: ConsentChannel, purpose: ConsentPurpose, link_issued: datetime) -> str:
        """Why a confirmation link issued at ``link_issued`` may not start consent ('' when it
        may): consent moves forward only by the person's own act, never past a later opt-out."""
        key = consent_key(channel, purpose)
        if self.erased:
            return "the person was erased"
        if key not in self.pending_consents:
            return "no confirmation is awaited"
        withdrawn = self.withdrawn_at.get(key)
        if withdrawn is not None and withdrawn >= link_issued:
            return f"the link is older than the opt-out of {utc_text(withdrawn)}"
        return ""
