"""Marketing costs: what a campaign, partner, channel or event cost over a period.

Each (what, name, period) is one ``CostEntry``; importing the same file again changes nothing,
and a corrected amount is a revision (the history stays). Reports spread an entry's amount
evenly over its period's days and set it against the leads captured in those days.
"""

from __future__ import annotations

import re
from calendar import monthrange
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from engine.domain.shared.money import Money
from engine.domain.shared.topics import keep_topics

COST_NAMESPACE = UUID("3f6d0e8e-5a4b-4c1f-9d2e-7b8a6c5d4e3f")
#: Where a lead came from, as the reports group it (first or last touch).
DIMENSIONS = ("channel", "partner", "campaign", "utm_source", "utm_medium", "utm_campaign", "event")
#: What a cost can be for: any attribution dimension.
COST_KINDS = DIMENSIONS
#: The columns of a costs file (note is optional).
COST_COLUMNS = ("kind", "name", "period", "amount", "currency")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True, order=True)
class Period:
    """Whole days, ``start`` to ``end`` inclusive."""

    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def overlap(self, since: date | None, until: date | None) -> int:
        """Days of this period between ``since`` and ``until`` (inclusive; None: unbounded)."""
        lo = max(self.start, since) if since else self.start
        hi = min(self.end, until) if until else self.end
        return max(0, (hi - lo).days + 1)

    def __str__(self) -> str:
        return self.start.isoformat() if self.start == self.end else f"{self.start}..{self.end}"

    @property
    def label(self) -> str:
        """As a person writes it: ``2026-03`` for a whole month, else as ``str``."""
        whole_month = self.start.day == 1 and self.end == self.start.replace(
            day=monthrange(self.start.year, self.start.month)[1]
        )
        return f"{self.start:%Y-%m}" if whole_month else str(self)


def parse_period(text: str) -> Period:
    """``2026-03`` (a month), ``2026-03-05`` (a day) or ``2026-03-01..2026-03-31``."""
    text = text.strip()
    if (m := _MONTH.match(text)) and 1 <= int(m[2]) <= 12:
        year, month = int(m[1]), int(m[2])
        return Period(date(year, month, 1), date(year, month, monthrange(year, month)[1]))
    start, sep, end = text.partition("..")
    try:
        period = Period(date.fromisoformat(start.strip()), date.fromisoformat((end if sep else start).strip()))
    except ValueError:
        raise ValueError("expected a month (2026-03), a day (2026-03-05) or days (2026-03-01..2026-03-31)") from None
    if period.end < period.start:
        raise ValueError(f"the period ends ({period.end}) before it starts ({period.start})")
    return period


@dataclass(frozen=True)
class CostLine:
    """One valid row of a costs file."""

    line: int
    kind: str
    name: str
    period: Period
    amount: Decimal
    currency: str
    note: str = ""


@dataclass(frozen=True)
class CostProblem:
    line: int
    field: str
    problem: str


def parse_cost_rows(
    rows: Iterable[tuple[int, Mapping[str, str | None]]], currency: str
) -> tuple[list[CostLine], list[CostProblem]]:
    """Validate numbered rows (line, column → text): every problem of every row, and the rows
    that have none. Amounts are in the reports' ``currency``; a row in another one is refused."""
    lines: list[CostLine] = []
    problems: list[CostProblem] = []
    seen: dict[tuple[str, str, Period], int] = {}
    for number, row in rows:
        found: list[CostProblem] = []

        def text(column: str, row: Mapping[str, str | None] = row) -> str:
            return (row.get(column) or "").strip()

        def problem(column: str, message: str, found: list[CostProblem] = found, number: int = number) -> None:
            found.append(CostProblem(number, column, message))

        unknown = sorted(set(row) - {*COST_COLUMNS, "note"} - {None})
        for column in unknown:
            problem(str(column), f"unknown column (expected {', '.join(COST_COLUMNS)}, note)")
        kind, name = text("kind").lower(), text("name")
        if kind not in COST_KINDS:
            problem("kind", f"{kind!r} is not one of {', '.join(COST_KINDS)}" if kind else "missing")
        if not name:
            problem("name", "missing: the campaign, partner, channel or event the money was spent on")
        elif len(name) > 200:
            problem("name", "longer than 200 characters")
        period: Period | None = None
        try:
            period = parse_period(text("period"))
        except ValueError as e:
            problem("period", str(e) if text("period") else "missing")
        amount: Decimal | None = None
        try:
            amount = Decimal(text("amount").replace(",", ""))
            if not amount.is_finite() or amount < 0:
                problem("amount", f"{text('amount')!r} is not an amount of money (0 or more)")
                amount = None
            elif amount != amount.quantize(Decimal("0.01")):
                problem("amount", f"{text('amount')!r} has more than 2 decimal places")
                amount = None
        except InvalidOperation:
            problem("amount", f"{text('amount')!r} is not a number" if text("amount") else "missing")
        code = text("currency").upper()
        if not re.fullmatch(r"[A-Z]{3}", code):
            problem("currency", f"{text('currency')!r} is not a currency code like {currency}")
        elif code != currency:
            problem("currency", f"reports are in {currency} (HUOKE_CURRENCY): convert {code} amounts first")
        if not found and period is not None and amount is not None:
            key = (kind, name, period)
            if key in seen:
                problem("period", f"{kind} {name!r} {period} is already on line {seen[key]}")
            else:
                seen[key] = number
                lines.append(CostLine(number, kind, name, period, amount, code, text("note")[:500]))
        problems += found
    return lines, problems


def cost_id(kind: str, name: str, period: Period) -> UUID:
    return uuid5(COST_NAMESPACE, "\x1f".join((kind, name, str(period.start), str(period.end))))


class CostEntry(Aggregate):
    """What one campaign, partner, channel or event cost over one period; revised, never deleted."""

    class Recorded(Aggregate.Created):
        """v2: the amount as Money (v1 kept the amount and its currency as two texts)."""

        class_version = 2
        kind: str
        name: str
        start: str  # ISO dates
        end: str
        amount: Money
        note: str
        by: str
        at: datetime

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["amount"] = Money(Decimal(state["amount"]), state.pop("currency"))

    class Revised(Aggregate.Event):
        """v2: the corrected amount as a Decimal (in the entry's currency, fixed when recorded)."""

        class_version = 2
        amount: Decimal
        note: str
        by: str
        at: datetime

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["amount"] = Decimal(state["amount"])

    @staticmethod
    def create_id(kind: str, name: str, start: str, end: str, **_: object) -> UUID:
        return cost_id(kind, name, Period(date.fromisoformat(start), date.fromisoformat(end)))

    @event(Recorded)
    def __init__(
        self, kind: str, name: str, start: str, end: str, amount: Money, note: str, by: str, at: datetime
    ) -> None:
        self.kind, self.name, self.start, self.end = kind, name, start, end
        self.amount, self.note = amount, note
        self.recorded_at = at
        self.revisions = 0

    @property
    def period(self) -> Period:
        return Period(date.fromisoformat(self.start), date.fromisoformat(self.end))

    def revise(self, amount: Decimal, note: str, by: str, at: datetime) -> bool:
        """Record a corrected amount or note; False when nothing differs."""
        if (self.amount.amount, self.note) == (amount, note):
            return False
        self._revised(amount=amount, note=note, by=by, at=at)
        return True

    @event(Revised)
    def _revised(self, amount: Decimal, note: str, by: str, at: datetime) -> None:
        self.amount, self.note = Money(amount, self.amount.currency), note
        self.revisions += 1


keep_topics("engine.domain.marketing.costs", CostEntry)
