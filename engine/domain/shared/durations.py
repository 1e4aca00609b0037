"""Durations and calendar offsets as journeys and policies write them ('2d', '6mo', '-7d').

Years and months move by the calendar; weeks, days, hours and minutes are plain durations.
"""

from __future__ import annotations

import hashlib
import re
from calendar import monthrange
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

_DURATION = re.compile(r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?$")
_OFFSET = re.compile(r"^(-)?(?:(\d+)y)?(?:(\d+)mo)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?$")


@dataclass(frozen=True)
class CalendarOffset:
    """Years and months move by the calendar; the rest is a plain duration."""

    years: int = 0
    months: int = 0
    delta: timedelta = timedelta(0)

    def after(self, moment: datetime) -> datetime:
        month = moment.month - 1 + self.months + 12 * self.years
        year, month = moment.year + month // 12, month % 12 + 1
        day = min(moment.day, monthrange(year, month)[1])
        return moment.replace(year=year, month=month, day=day) + self.delta


def parse_duration(text: Any) -> timedelta | None:
    """Parse '2d', '36h', '1w2d', '90m'; None when malformed or zero."""
    m = _DURATION.match(str(text).strip())
    if not m or not any(m.groups()):
        return None
    w, d, h, mi = (int(g or 0) for g in m.groups())
    delta = timedelta(weeks=w, days=d, hours=h, minutes=mi)
    return delta if delta > timedelta(0) else None


def parse_offset(text: Any) -> CalendarOffset | None:
    """Parse '3y', '6mo', '-7d', '1y2mo'; calendar years and months, then weeks/days/hours."""
    m = _OFFSET.match(str(text).strip())
    if not m or not any(m.groups()[1:]):
        return None
    sign = -1 if m.group(1) else 1
    y, mo, w, d, h = (int(g or 0) for g in m.groups()[1:])
    return CalendarOffset(sign * y, sign * mo, sign * timedelta(weeks=w, days=d, hours=h))


def whole_months(start: datetime, end: datetime) -> int:
    """Calendar months from ``start`` to ``end`` (a month counts from the start of the day it
    completes, on ``end``'s calendar: the review at local midnight sees it that day)."""
    start = start.astimezone(end.tzinfo)
    months = (end.year - start.year) * 12 + end.month - start.month
    return months - 1 if end.day < start.day else months


def days_between(start: datetime, end: datetime) -> int:
    """Calendar days from ``start``'s date to ``end``'s, on ``end``'s calendar."""
    return (end.date() - start.astimezone(end.tzinfo).date()).days


#: No offset: the moment itself.
NO_OFFSET = CalendarOffset()


def utc_text(moment: datetime) -> str:
    """A moment for a reason or a message, labelled UTC and converted to it first (a moment kept
    in the lender's zone once printed 22:40 "UTC" for a send at 14:40 UTC)."""
    return zone_text(moment, UTC)


def zone_text(moment: datetime, zone: tzinfo) -> str:
    """A moment in ``zone`` (the lender's), the zone named: ``2026-11-02 22:40 Asia/Shanghai``."""
    local = moment.astimezone(zone)
    return f"{local:%Y-%m-%d %H:%M} {getattr(zone, 'key', None) or local.tzname() or 'UTC'}"


def backoff(attempt: int, first: timedelta, cap: timedelta, jitter_key: str = "") -> timedelta:
    """The one exponential back-off: ``first`` before the first retry (``attempt`` 0), doubling
    each time, at most ``cap``; with a ``jitter_key`` spread ±20%, the same for the same key (many
    items that failed together do not all come due at once, and a re-run decides alike)."""
    delay: timedelta = min(first * (2 ** min(max(attempt, 0), 40)), cap)
    if jitter_key:
        share = int.from_bytes(hashlib.sha256(jitter_key.encode()).digest()[:2], "big") / 65535
        delay = delay * (0.8 + 0.4 * share)
    return delay
