"""What else happens to a lead, and when it is recorded: it comes again through a touch not
seen before, a person clicks a tracked link (the first click engages it), a friend it referred
applies or a reward is paid (each once), it is tagged, it is erased (once)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

from engine.domain.leads.attribution import attribution_of, touch_key
from engine.domain.leads.state import LeadState
from engine.domain.shared.values import JSONDict, Stage


class ActivityDecisions(LeadState):
    """The Lead's rules for touches, clicks, referral news, tags and erasure (a mixin: the state
    and the events are the Lead's)."""

    if TYPE_CHECKING:

        def advance_to(self, stage: Stage, reason: str, at: datetime) -> bool: ...
        def _touched(self, source: JSONDict, at: datetime) -> None: ...
        def _link_clicked(
            self, send_id: UUID, journey_id: str, step: str, template: str, link: int, at: datetime
        ) -> None: ...
        def _erased(self, reason: str, by: str, retained: list[str], at: datetime) -> None: ...
        def _friend_applied(self, referral_id: UUID, application_id: str, at: datetime) -> None: ...
        def _referral_rewarded(
            self, referral_id: UUID, application_id: str, role: str, reward: JSONDict, at: datetime
        ) -> None: ...
        def _tagged(self, tag: str, reason: str, at: datetime) -> None: ...

    def touch(self, source: JSONDict, at: datetime) -> bool:
        """Record that the lead came (again) through ``source``, once per distinct attribution
        (channel, partner, campaign, UTM, event): importing the same rows again records nothing."""
        key = touch_key(source)
        if self.erased or key == touch_key(self.source) or key in self.touches:
            return False
        self._touched(source=attribution_of(source), at=at)
        return True

    def record_click(self, send_id: UUID, journey_id: str, step: str, template: str, link: int, at: datetime) -> bool:
        """A person's click on link ``link`` of a message (once per link); the first makes the
        lead engaged, with the message and link as the reason, unless it is further on."""
        if self.erased or (send_id, link) in self.clicked_links:
            return False
        self._link_clicked(send_id=send_id, journey_id=journey_id, step=step, template=template, link=link, at=at)
        if self.stage in (Stage.NEW, Stage.CONTACTED):
            self.advance_to(Stage.ENGAGED, f"clicked link {link} of {template} ({journey_id}, step {step})", at)
        return True

    def erase(self, reason: str, by: str, retained: list[str], at: datetime) -> None:
        if not self.erased:
            self._erased(reason=reason, by=by, retained=retained, at=at)

    def friend_applied(self, referral_id: UUID, at: datetime) -> bool:
        """Record that a referred friend applied (once per referral)."""
        if f"{referral_id}:applied" in self.referral_news:
            return False
        self._friend_applied(referral_id=referral_id, application_id=str(referral_id), at=at)
        return True

    def referral_rewarded(self, referral_id: UUID, role: str, reward: JSONDict, at: datetime) -> bool:
        """Record a referral reward granted to this lead (once per referral and role)."""
        if f"{referral_id}:rewarded:{role}" in self.referral_news:
            return False
        self._referral_rewarded(
            referral_id=referral_id, application_id=str(referral_id), role=role, reward=reward, at=at
        )
        return True

    def tag(self, tag: str, reason: str, at: datetime) -> bool:
        """Add a tag (once)."""
        if tag in self.tags:
            return False
        self._tagged(tag=tag, reason=reason, at=at)
        return True
