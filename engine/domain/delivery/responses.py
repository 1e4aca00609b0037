"""What a recipient did with a message, and when it is recorded: a tracked link followed (once
per link and kind: a person's click, a scanner's), an application that came through a link (once
per application), the open pixel fetched (once)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

from engine.domain.delivery.delivery_state import DeliveryState


class ResponseDecisions(DeliveryState):
    """The Delivery's rules for clicks, conversions and opens (a mixin: the events are the
    Delivery's)."""

    if TYPE_CHECKING:

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
        ) -> None: ...
        def _converted(
            self,
            lead_id: UUID,
            journey_id: str,
            step: str,
            channel: str,
            template: str,
            application_id: str,
            at: datetime,
        ) -> None: ...
        def _opened(self, lead_id: UUID, journey_id: str, step: str, at: datetime) -> None: ...

    def record_click(self, link: int, url: str, kind: str, reason: str, at: datetime) -> bool:
        """A tracked link followed; False when this link already has a click of this kind."""
        if (link, kind) in self.clicks:
            return False
        self._clicked(
            lead_id=self.lead_id,
            journey_id=self.journey_id,
            step=self.step,
            channel=self.channel,
            template=self.template,
            link=link,
            url=url,
            kind=kind,
            reason=reason,
            at=at,
        )
        return True

    def record_conversion(self, application_id: str, at: datetime) -> bool:
        """An application that came through one of this message's links (once per application)."""
        if application_id in self.conversions:
            return False
        self._converted(
            lead_id=self.lead_id,
            journey_id=self.journey_id,
            step=self.step,
            channel=self.channel,
            template=self.template,
            application_id=application_id,
            at=at,
        )
        return True

    def record_open(self, at: datetime) -> bool:
        if self.opened:
            return False
        self._opened(lead_id=self.lead_id, journey_id=self.journey_id, step=self.step, at=at)
        return True
