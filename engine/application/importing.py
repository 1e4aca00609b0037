"""Importing leads, lifecycle facts and marketing costs (the use cases behind ``huoke leads
import``, ``events import``, ``costs import``, ``POST /leads``, ``POST /events`` and the bus):
every row is parsed into a command first; a bad row is reported with file, line, field and
problem and nothing of it is stored; valid rows are applied in batches (one transaction each).
Reading files and parsing rows are the adapters' (``row_files``, ``lead_rows``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from engine.application.delivery.clicks import Conversion, record_conversions
from engine.application.engine import Engine
from engine.application.marketing import CostImport
from engine.domain.marketing.costs import CostProblem, parse_cost_rows
from engine.domain.shared.errors import HuokeError

BATCH = 500


class RowError(HuokeError):
    """Raised when a row cannot become a command; ``problems`` are (field, message) pairs."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{f}: {m}" for f, m in problems))
        self.problems = problems


@dataclass(frozen=True)
class RowProblem:
    """One refused row: where it is and what is wrong, field by field."""

    file: str
    line: int
    field: str
    problem: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.field}: {self.problem}"


@dataclass
class ImportReport:
    """What an import did; ``errors`` lists every refused row."""

    file: str
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[RowProblem] = field(default_factory=list)
    flagged: list[RowProblem] = field(default_factory=list)
    #: Rows that disagreed with a known lead's own source: recorded on the lead, not applied.
    conflicts: list[RowProblem] = field(default_factory=list)
    #: (line, created|updated|unchanged, lead id) of each row applied.
    applied: list[tuple[int, str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "rows": self.rows,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "refused": len({(e.line) for e in self.errors}),
            "errors": [vars(e) for e in self.errors],
            "flagged": [vars(e) for e in self.flagged],
            "conflicts": [vars(e) for e in self.conflicts],
        }


#: A row's parser: the raw row and where it came from ("file:line") in, a command out
#: (``RowError`` when it cannot be one).
Parse = Callable[[dict[str, Any], str], Any]
#: Numbered rows: (line, row), or (line, why it could not be read at all).
Rows = Iterable[tuple[int, dict[str, Any] | str]]
Batch = list[tuple[int, Any]]


def _import(
    label: str,
    rows: Rows,
    parse: Parse,
    apply: Callable[[Batch, ImportReport], None],
    progress: Callable[[int], None],
) -> ImportReport:
    """Parse each row into a command; apply valid ones in batches; report the rest."""
    report = ImportReport(label)
    batch: Batch = []
    source = label.rsplit("/", 1)[-1]
    for line, raw in rows:
        report.rows += 1
        try:
            if isinstance(raw, str):
                raise RowError([("row", raw)])
            command = parse(raw, f"{source}:{line}")
        except RowError as e:
            report.errors += [RowProblem(label, line, f, m) for f, m in e.problems]
            progress(1)
            continue
        batch.append((line, command))
        if len(batch) >= BATCH:
            apply(batch, report)
            progress(len(batch))
            batch = []
    if batch:
        apply(batch, report)
        progress(len(batch))
    return report


def import_leads(
    engine: Engine, label: str, rows: Rows, parse: Parse, progress: Callable[[int], None] = lambda _: None
) -> ImportReport:
    """Capture every valid lead row; invalid contact details are flagged."""

    def apply(batch: Batch, report: ImportReport) -> None:
        for (line, command), outcome in zip(batch, engine.capture_leads([c for _, c in batch]), strict=True):
            report.flagged += [RowProblem(label, line, "contact", i) for i in command.contact_issues]
            report.conflicts += [
                RowProblem(
                    label,
                    line,
                    c.split("=", 1)[0],
                    f"lead {str(outcome.lead_id)[:8]} has another value from its own source: kept it, "
                    "recorded this one for review (huoke leads show)",
                )
                for c in outcome.conflicts
            ]
            if outcome.error:
                report.errors.append(RowProblem(label, line, "lead", outcome.error))
                continue
            kind = "created" if outcome.created else "updated" if outcome.changed else "unchanged"
            setattr(report, kind, getattr(report, kind) + 1)
            report.applied.append((line, kind, str(outcome.lead_id)))

    return _import(label, rows, parse, apply, progress)


def import_lifecycle(
    engine: Engine, label: str, rows: Rows, parse: Parse, progress: Callable[[int], None] = lambda _: None
) -> ImportReport:
    """Record every valid lifecycle row; facts the domain refuses are reported; an application
    that names the click it came from is credited to that message."""

    def apply(batch: Batch, report: ImportReport) -> None:
        conversions = []
        for (line, command), outcome in zip(batch, engine.leads.record_lifecycle([c for _, c in batch]), strict=True):
            if outcome.error:
                report.errors.append(RowProblem(label, line, "event", outcome.error))
                continue
            kind = "updated" if outcome.changed else "unchanged"
            setattr(report, kind, getattr(report, kind) + 1)
            report.applied.append((line, kind, str(outcome.lead_id)))
            if command.click_ref and command.kind == "application_submitted" and outcome.lead_id is not None:
                at = command.at or engine.clock.now()
                conversions.append(Conversion(command.click_ref, outcome.lead_id, command.application_id, at))
        record_conversions(engine.deliveries, conversions)

    return _import(label, rows, parse, apply, progress)


def import_costs(marketing: Any, label: str, rows: Rows, by: str, currency: str) -> CostImport:
    """Validate every row of a costs file and record the valid ones (the marketing store's)."""
    report = CostImport(label)
    numbered: list[tuple[int, dict[str, Any]]] = []
    for line, row in rows:
        report.rows += 1
        if isinstance(row, str):
            report.errors.append(CostProblem(line, "(row)", row))
            continue
        numbered.append((line, {str(k): None if v is None else str(v) for k, v in row.items()}))
    lines, problems = parse_cost_rows(numbered, currency)
    report.errors += problems
    report.errors.sort(key=lambda e: e.line)
    recorded: CostImport = marketing.record_costs(lines, by, report)
    return recorded


@dataclass
class ReplyImport:
    """What a file of SMS replies or delivery receipts did: how many took effect, and the
    refused rows with why."""

    schema: str
    done: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self, counted: str) -> dict[str, Any]:
        return {"schema": self.schema, counted: self.done, "errors": self.errors}


def import_sms_replies(engine: Engine, rows: Rows, phone_of: Callable[[str], str | None]) -> ReplyImport:
    """Replies from a provider export (``from``, ``body``): an opt-out keyword takes effect at once."""
    from engine.domain.delivery.suppression import is_opt_out

    report = ReplyImport("huoke.sms.replies/1")
    for line, row in rows:
        if isinstance(row, str) or not row.get("from") or row.get("body") is None:
            report.errors.append({"line": line, "problem": "needs 'from' and 'body'"})
            continue
        phone = phone_of(str(row["from"]))
        if phone is None:
            report.errors.append({"line": line, "problem": f"not a phone number: {row['from']!r}"})
            continue
        if is_opt_out(str(row["body"])):
            engine.sms_reply_opt_out(phone, str(row["body"]), engine.clock.now())
            report.done += 1
    return report


def import_sms_receipts(engine: Engine, rows: Rows) -> ReplyImport:
    """Delivery receipts from a provider export (``send_id``, ``status``, ``error_code``)."""
    report = ReplyImport("huoke.sms.receipts/1")
    for line, row in rows:
        try:
            if isinstance(row, str):
                raise ValueError(row)
            send_id = UUID(str(row["send_id"]))
            status = str(row["status"]).strip()
        except (KeyError, ValueError) as e:
            report.errors.append({"line": line, "problem": f"needs send_id (a UUID) and status: {e}"})
            continue
        if engine.deliveries.record_receipt(send_id, status, str(row.get("error_code") or ""), engine.clock.now()):
            report.done += 1
        else:
            report.errors.append({"line": line, "problem": f"no message was sent with id {send_id}"})
    return report
