"""Clocks: the system clock, and a virtual clock that only moves when told."""

from __future__ import annotations

from datetime import UTC, datetime


class SystemClock:
    """Wall-clock time in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class VirtualClock:
    """A clock for tests, the demo and backtests: 60 days pass in seconds."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("VirtualClock needs a timezone-aware start time")
        self._now = start

    def now(self) -> datetime:
        return self._now

    def rewind_to(self, moment: datetime) -> None:
        """Set an earlier start (only before a run begins: e.g. to the oldest pending work)."""
        self._now = min(self._now, moment)

    def advance_to(self, moment: datetime) -> None:
        """Move forward to ``moment``; time never runs backwards."""
        self._now = max(self._now, moment)


class AcceleratedClock:
    """Wall-clock time running ``speed`` times faster from ``origin``: a rehearsal of days of
    journeys in minutes, live, with every process (serve, workers, imports) agreeing on the time
    because they share the origin and the speed."""

    def __init__(self, origin: datetime, speed: float) -> None:
        if origin.tzinfo is None:
            raise ValueError("AcceleratedClock needs a timezone-aware origin")
        self.origin = origin
        self.speed = speed

    def now(self) -> datetime:
        return self.origin + (datetime.now(UTC) - self.origin) * self.speed
