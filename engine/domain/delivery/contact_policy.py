"""Contact windows and frequency caps (DOMAIN.md): when and how often a lead may be contacted.

Windows are in the lead's local time, per country and channel; a lead whose time zone is unknown
gets the most restrictive window. Caps count marketing messages per lead, channel and period;
service messages bypass them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta, tzinfo
from typing import Any

from engine.domain.shared.durations import parse_duration, zone_text
from engine.domain.shared.errors import JourneyValidationError


@dataclass(frozen=True)
class Window:
    """Allowed local hours [start, end) for some countries and channels ('*' = any)."""

    start: time
    end: time
    countries: frozenset[str] = frozenset({"*"})
    channels: frozenset[str] = frozenset({"*"})

    def applies(self, country: str | None, channel: str) -> bool:
        return ("*" in self.countries or (country or "") in self.countries) and (
            "*" in self.channels or channel in self.channels
        )

    @property
    def hours(self) -> float:
        return (self.end.hour * 60 + self.end.minute - self.start.hour * 60 - self.start.minute) / 60

    def next_opening(self, now: datetime, tz: tzinfo) -> datetime | None:
        """None if ``now`` is inside the window, else when it next opens (in ``tz``)."""
        local = now.astimezone(tz)
        if self.start <= local.time() < self.end:
            return None
        day = local.date() if local.time() < self.start else local.date() + timedelta(days=1)
        return datetime.combine(day, self.start, tzinfo=tz)

    def describe(self, tz: tzinfo) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M} {tz}"


@dataclass(frozen=True)
class Cap:
    """At most ``max`` messages on ``channel`` for ``purpose`` per ``per``."""

    channel: str
    purpose: str
    max: int
    per: timedelta

    def describe(self) -> str:
        return f"at most {self.max} {self.purpose} {self.channel} per {self.per.days}d"


@dataclass(frozen=True)
class ContactPolicy:
    """All windows and caps; the first window that applies wins."""

    windows: tuple[Window, ...]
    strictest: Window
    caps: tuple[Cap, ...]
    #: Marketing messages from different journeys to one lead at least this far apart (0: off).
    spacing: timedelta = timedelta(0)

    def window(self, country: str | None, channel: str, zone_known: bool) -> Window | None:
        if not zone_known:
            return self.strictest
        return next((w for w in self.windows if w.applies(country, channel)), None)

    def cap(self, channel: str, purpose: str) -> Cap | None:
        return next((c for c in self.caps if c.channel == channel and c.purpose == purpose), None)


@dataclass(frozen=True)
class Hold:
    """Why a message may not go now, and until when it waits (``None``: the step says skip)."""

    reason: str
    until: datetime | None


def window_hold(window: Window | None, tz: tzinfo, now: datetime, skip: bool) -> Hold | None:
    """Outside the lead's contact window: wait for it to open (None inside it, or no window)."""
    opening = window.next_opening(now, tz) if window is not None else None
    if window is None or opening is None:
        return None
    return Hold(f"outside contact window {window.describe(tz)}", None if skip else opening)


def cap_hold(cap: Cap | None, sent: list[datetime], planned: int, now: datetime, skip: bool) -> Hold | None:
    """Over a frequency cap: ``sent`` are the messages on record within the cap's period (oldest
    first), ``planned`` those going out in this very pass. It waits until the oldest that counts
    leaves the period (or a minute, for those of this pass to be on record)."""
    if cap is None or len(sent) + planned < cap.max:
        return None
    until = sent[-cap.max] + cap.per if len(sent) >= cap.max else now + timedelta(minutes=1)
    return Hold(f"frequency cap: {cap.describe()}", None if skip else until)


def spacing_hold(
    spacing: timedelta, last: tuple[str, datetime] | None, now: datetime, lender_tz: tzinfo, skip: bool
) -> Hold | None:
    """Marketing from two journeys meets a lead at most once per ``spacing``: ``last`` is another
    journey's marketing within it (journey, when), if any; the later message waits."""
    if last is None or not spacing:
        return None
    journey, at = last
    reason = (
        f"spacing: {journey} sent this lead marketing at {zone_text(at, lender_tz)}; "
        f"one journey's marketing per {span_text(spacing)}"
    )
    return Hold(reason, None if skip else max(at + spacing, now + timedelta(minutes=1)))


def span_text(delta: timedelta) -> str:
    """A period in words: ``36 h`` or ``30 min``."""
    hours = delta.total_seconds() / 3600
    return f"{hours:g} h" if hours >= 1 else f"{delta.total_seconds() / 60:g} min"


def parse_contact_policy(data: Any, source: str = "contact_policy.yaml") -> ContactPolicy:
    """Validate the contact policy file; every problem names the entry."""
    problems: list[str] = []
    if not isinstance(data, dict):
        raise JourneyValidationError([f"{source}: expected a mapping"])

    def clock(value: Any, where: str) -> time:
        try:
            return time.fromisoformat(str(value))
        except ValueError:
            problems.append(f"{source}: {where}: expected a time like 08:00, got {value!r}")
            return time(0)

    windows = []
    for n, raw in enumerate(data.get("windows") or [], 1):
        where = f"windows[{n}]"
        if not isinstance(raw, dict):
            problems.append(f"{source}: {where}: expected {{countries, channels, start, end}}")
            continue
        w = Window(
            clock(raw.get("start"), where),
            clock(raw.get("end"), where),
            frozenset(raw.get("countries") or ["*"]),
            frozenset(raw.get("channels") or ["*"]),
        )
        if w.end <= w.start:
            problems.append(f"{source}: {where}: end must be after start")
        windows.append(w)
    raw_strict = data.get("unknown_zone") or {"start": "09:00", "end": "20:00"}
    strictest = Window(clock(raw_strict.get("start"), "unknown_zone"), clock(raw_strict.get("end"), "unknown_zone"))
    if any(w.hours < strictest.hours for w in windows):
        problems.append(f"{source}: unknown_zone must be the most restrictive window (no window may be shorter)")
    caps = []
    for n, raw in enumerate(data.get("caps") or [], 1):
        per = parse_duration(raw.get("per")) if isinstance(raw, dict) else None
        if not isinstance(raw, dict) or per is None or not isinstance(raw.get("max"), int) or raw["max"] < 1:
            problems.append(f"{source}: caps[{n}]: expected {{channel, purpose, max: N, per: 7d}}")
            continue
        caps.append(Cap(str(raw.get("channel")), str(raw.get("purpose", "marketing")), raw["max"], per))
    spacing = timedelta(0)
    if data.get("spacing") is not None:
        parsed = parse_duration(data["spacing"])
        if parsed is None:
            problems.append(f"{source}: spacing: expected a duration like 1d or 12h, got {data['spacing']!r}")
        else:
            spacing = parsed
    if problems:
        raise JourneyValidationError(problems)
    return ContactPolicy(tuple(windows), strictest, tuple(caps), spacing)


#: Used when no contact_policy.yaml exists: DOMAIN.md's defaults, and the strictest window for
#: SMS and calls in every other country (a lead's country comes from its phone number).
DEFAULT_POLICY = ContactPolicy(
    windows=(
        Window(time(8), time(21), frozenset({"US"}), frozenset({"sms", "phone"})),
        Window(time(9), time(20), frozenset({"CN"}), frozenset({"sms"})),
        Window(time(9), time(20), frozenset({"*"}), frozenset({"sms", "phone"})),
    ),
    strictest=Window(time(9), time(20)),
    caps=(Cap("sms", "marketing", 2, timedelta(days=7)), Cap("email", "marketing", 3, timedelta(days=7))),
    spacing=timedelta(days=1),
)
