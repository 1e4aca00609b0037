"""The reports' shared parts: the scope a report is narrowed to and the measures it counts."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from engine.domain.shared.values import MILESTONES

MEASURES = ("leads", *MILESTONES, "loans", "volume")


@dataclass(frozen=True)
class Scope:
    """Which leads a report counts: captured ``since``..``until`` (the lender's days, inclusive),
    attributed to one source ``channel`` (by ``touch``: each lead's first or last; the daily
    activity and score bands go by the first), and (where a report is per journey) one
    ``journey``."""

    since: date | None = None
    until: date | None = None
    channel: str | None = None
    journey: str | None = None
    touch: str = "first"

    @property
    def days(self) -> tuple[str | None, str | None]:
        return (
            self.since.isoformat() if self.since else None,
            self.until.isoformat() if self.until else None,
        )

    def as_dict(self) -> dict[str, Any]:
        since, until = self.days
        return {"since": since, "until": until, "channel": self.channel, "journey": self.journey, "touch": self.touch}


#: Every lead, first touch (the reports' default scope).
ALL_LEADS = Scope()


def _rate(part: float, whole: float) -> float:
    return round(part / whole, 4) if whole else 0.0


def _money(value: Decimal | float) -> float:
    return float(round(Decimal(str(value)), 2))


def _totals(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = dict.fromkeys(MEASURES, 0)
    out["volume"] = Decimal(0)
    out["multi_touch"] = 0
    for r in rows:
        for m in (*MEASURES, "multi_touch"):
            if m == "volume":
                out[m] += Decimal(str(r[m] or 0))
            else:
                out[m] += int(r[m] or 0)
    return out


def _measures(acc: dict[str, Any]) -> dict[str, Any]:
    leads = acc["leads"]
    return {
        **{m: acc[m] for m in ("leads", *MILESTONES, "loans")},
        "funded_volume": _money(acc["volume"]),
        "multi_touch": acc["multi_touch"],
        "contact_rate": _rate(acc["contacted"], leads),
        "application_rate": _rate(acc["applied"], leads),
        "approval_rate": _rate(acc["approved"], acc["applied"]),
        "funded_rate": _rate(acc["funded"], leads),
    }
