"""The daily review: once a day, leads whose facts move with the calendar (months on book,
instalments paid, days to maturity, days since a decline or a missed repayment) are
re-segmented, so life-event segments are entered on the right day."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from engine.domain.shared.topics import keep_topics
from engine.domain.shared.values import derive_id


class CalendarReview(Aggregate):
    """Which days have been reviewed (one aggregate per deployment)."""

    class Started(Aggregate.Created):
        pass

    class DayReviewed(Aggregate.Event):
        day: str
        leads: int
        changed: int
        at: datetime

    @event(Started)
    def __init__(self) -> None:
        self.last_day: date | None = None

    @staticmethod
    def create_id(**_: Any) -> UUID:
        return CALENDAR_REVIEW_ID

    def reviewed(self, day: date, leads: int, changed: int, at: datetime) -> None:
        if self.last_day is not None and day <= self.last_day:
            return
        self._day_reviewed(day=day.isoformat(), leads=leads, changed=changed, at=at)

    @event(DayReviewed)
    def _day_reviewed(self, day: str, leads: int, changed: int, at: datetime) -> None:
        self.last_day = date.fromisoformat(day)


CALENDAR_REVIEW_ID = derive_id("calendar-review")


keep_topics("engine.domain.calendar_review", CalendarReview)
