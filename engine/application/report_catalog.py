"""Every report by name: which views it reads, the filters it takes, and the document it builds
(what the CLI prints, the API returns and the dashboard draws: one truth)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal, get_args
from zoneinfo import ZoneInfo

from engine.application.analytics import (
    Scope,
    attribution_report,
    costs_report,
    daily_report,
    engagement_report,
    experiments_report,
    flows_report,
    scores_report,
    tasks_report,
)
from engine.application.engine import Engine
from engine.application.reports import funnel_report, journeys_report, referrals_report
from engine.domain.shared.errors import HuokeError
from engine.domain.shared.values import SourceChannel
from engine.settings import Settings

#: The reports, by name (the CLI's ``huoke report NAME``, the API's ``/reports/NAME``).
ReportName = Literal[
    "funnel",
    "journeys",
    "referrals",
    "attribution",
    "costs",
    "experiments",
    "engagement",
    "daily",
    "scores",
    "flows",
    "tasks",
]
#: The views each report reads (what ``as_of`` rebuilds from the log).
REPORT_VIEWS: dict[ReportName, tuple[str, ...]] = {
    "funnel": ("funnel",),
    "journeys": ("funnel", "journey_index"),
    "referrals": ("referral_ledger",),
    "attribution": ("funnel",),
    "costs": ("funnel", "referral_ledger"),
    "experiments": ("funnel",),
    "engagement": ("funnel",),
    "daily": ("funnel",),
    "scores": ("funnel",),
    "flows": ("funnel", "journey_index"),
    "tasks": ("journey_index",),
}
REPORTS: tuple[ReportName, ...] = get_args(ReportName)


class FilterError(HuokeError):
    """A filter the page cannot apply (shown on the page, nothing else changes)."""


#: The days huoke accepts in filters and report moments: a lender's marketing has no use for the
#: year 1 or 9999, and date arithmetic near them overflows (a 500 instead of an answer).
FIRST_DAY, LAST_DAY = date(1970, 1, 2), date(2199, 12, 31)


def check_day(value: date | datetime, name: str) -> None:
    """Refuse a day or moment outside ``FIRST_DAY``..``LAST_DAY`` with a plain ``FilterError``."""
    day = value.date() if isinstance(value, datetime) else value
    if not FIRST_DAY <= day <= LAST_DAY:
        raise FilterError(f"{name}: {value.isoformat()[:32]} is out of range ({FIRST_DAY} to {LAST_DAY})")


def parse_moment(text: str, timezone: str, option: str, day_ends: bool = True) -> datetime:
    """A moment as people write it: a day (its end, or with ``day_ends=False`` its start) or a
    date and time, in the lender's time zone unless an offset is given; one outside the days
    huoke knows is refused (``FilterError`` naming ``option``)."""
    tz = ZoneInfo(timezone)
    text = text.strip()
    try:
        if day_ends and len(text) == 10:
            day = date.fromisoformat(text)
            check_day(day, option)
            return datetime.combine(day + timedelta(days=1), time(), tz) - timedelta(microseconds=1)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise FilterError(
            f"{option}: expected a day like 2026-03-31 or a time like 2026-03-31T18:00, got {text!r}"
        ) from None
    check_day(moment, option)
    return moment if moment.tzinfo else moment.replace(tzinfo=tz)


def scope_from(params: dict[str, str | None], prefix: str = "", empty_ok: bool = False) -> Scope:
    """Report filters (the page's, the API's, the CLI's): since, until (days), channel, journey,
    touch. A refusal names the filter as ``prefix`` + its name (``--since`` on the CLI). With
    ``empty_ok`` (the API, whose schema cannot relate two parameters) ``until`` before ``since``
    is an empty window, not a mistake."""

    def day(name: str) -> date | None:
        text = (params.get(name) or "").strip()
        if not text:
            return None
        try:
            found = date.fromisoformat(text)
        except ValueError:
            raise FilterError(f"{prefix}{name}: expected a day like 2026-03-31, got {text[:40]!r}") from None
        check_day(found, prefix + name)
        return found

    channel = (params.get("channel") or "").strip() or None
    channels = [c.value for c in SourceChannel]
    if channel and channel not in channels:
        raise FilterError(
            f"{prefix}channel: {channel[:40]!r} is not a source channel; use one of {', '.join(channels)}"
        )
    touch = (params.get("touch") or "first").strip()
    if touch not in ("first", "last"):
        raise FilterError(f"{prefix}touch: expected first or last, got {touch[:40]!r}")
    scope = Scope(day("since"), day("until"), channel, (params.get("journey") or "").strip()[:100] or None, touch)
    if scope.since and scope.until and scope.until < scope.since and not empty_ok:
        raise FilterError(f"{prefix}until ({scope.until}) is before {prefix}since ({scope.since})")
    return scope


def check_journey(engine: Engine, scope: Scope, prefix: str = "") -> None:
    """Refuse a journey filter under which no journey was ever published: a typo would
    otherwise show empty reports as if nothing had happened."""
    if scope.journey and engine.journeys.publication(scope.journey) is None:
        engine.journeys.refresh_live()
        known = ", ".join(sorted(engine.journeys.live)) or "none yet"
        raise FilterError(f"{prefix}journey: no journey {scope.journey[:40]!r} was published; published: {known}")


def build_report(
    name: ReportName,
    engine: Engine,
    settings: Settings,
    scope: Scope,
    margin: Decimal | None,
    costs: Callable[[], list[Any]],
) -> dict[str, Any]:
    """The ``name`` report from ``engine``'s views (``costs``: the marketing costs to set against it)."""
    match name:
        case "funnel":
            return funnel_report(engine)
        case "journeys":
            return journeys_report(engine)
        case "referrals":
            return referrals_report(engine)
        case "attribution":
            return attribution_report(engine, scope)
        case "costs":
            rate = settings.funded_margin if margin is None else margin
            return costs_report(engine, costs(), rate, settings.currency, scope)
        case "experiments":
            return experiments_report(engine, scope)
        case "engagement":
            return engagement_report(engine, scope)
        case "daily":
            return daily_report(engine, scope)
        case "scores":
            return scores_report(engine, scope)
        case "flows":
            return flows_report(engine, scope)
        case "tasks":
            return tasks_report(engine, settings.timezone, scope)
    raise KeyError(name)
