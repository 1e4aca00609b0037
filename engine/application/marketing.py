"""Marketing costs: the use cases behind ``huoke costs``. Their own event log (store ``marketing``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from engine.application.ports import Clock
from engine.application.projecting import matching_notifications
from engine.domain.marketing.costs import CostEntry, CostLine, CostProblem, Period, cost_id
from engine.domain.shared.money import Money
from engine.eventstore.values import StoreApplication

COST_TOPICS = (CostEntry.Recorded.TOPIC,)  # type: ignore[attr-defined]


@dataclass
class CostImport:
    """What a costs import did: new entries, revised amounts, rows already recorded, refusals."""

    file: str
    rows: int = 0
    created: int = 0
    revised: int = 0
    unchanged: int = 0
    errors: list[CostProblem] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "schema": "huoke.costs.import/1",
            "file": self.file,
            "rows": self.rows,
            "created": self.created,
            "revised": self.revised,
            "unchanged": self.unchanged,
            "errors": [{"line": e.line, "field": e.field, "problem": e.problem} for e in self.errors],
        }


@dataclass(frozen=True)
class Cost:
    """A cost as the reports read it."""

    kind: str
    name: str
    period: Period
    amount: Decimal
    currency: str
    note: str = ""
    source: str = "costs file"

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "period": str(self.period),
            "start": self.period.start.isoformat(),
            "end": self.period.end.isoformat(),
            "amount": float(self.amount),
            "currency": self.currency,
            "note": self.note,
            "source": self.source,
        }


class Marketing(StoreApplication):
    """Cost entries (recorded, revised) for the cost and return reports."""

    name = "Marketing"
    snapshotting_intervals: ClassVar[dict[type[Any], int]] = {}

    def __init__(self, env: dict[str, str], clock: Clock) -> None:
        self.clock = clock
        super().__init__(env)

    def record_costs(self, lines: list[CostLine], by: str, report: CostImport) -> CostImport:
        """Record valid lines: new ones created, changed amounts revised, the rest unchanged."""
        now = self.clock.now()
        for line in lines:
            try:
                entry: CostEntry = self.repository.get(cost_id(line.kind, line.name, line.period))
            except AggregateNotFoundError:
                entry = CostEntry(
                    kind=line.kind,
                    name=line.name,
                    start=line.period.start.isoformat(),
                    end=line.period.end.isoformat(),
                    amount=Money(line.amount, line.currency),
                    note=line.note,
                    by=by,
                    at=now,
                )
                self.save(entry)
                report.created += 1
                continue
            if entry.revise(line.amount, line.note, by, now):
                self.save(entry)
                report.revised += 1
            else:
                report.unchanged += 1
        return report

    def costs(self, as_of: datetime | None = None) -> list[Cost]:
        """Every cost entry as last revised (``as_of``: as it stood then), oldest first."""
        out = []
        for note in matching_notifications(self.recorder, COST_TOPICS):
            entry: CostEntry | None = None
            entry_id = UUID(str(note.originator_id))
            if as_of is None:
                entry = self.repository.get(entry_id)
            else:
                for e in self.events.get(entry_id):
                    if e.at <= as_of:  # type: ignore[attr-defined]
                        entry = e.mutate(entry)  # type: ignore[attr-defined]
            if entry is not None:
                out.append(
                    Cost(entry.kind, entry.name, entry.period, entry.amount.amount, entry.amount.currency, entry.note)
                )
        return out
