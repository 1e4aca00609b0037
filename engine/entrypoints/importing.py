"""Import lead and lifecycle files (CSV or JSONL): validate every row, keep the valid ones.

Rows are validated into commands first; a bad row is reported with file, line, field and
problem and nothing of it is stored. Valid rows are applied in batches (one transaction each).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from engine.adapters.json_input import JsonInputError, parse_json
from engine.application.delivery.clicks import Conversion, record_conversions
from engine.application.engine import Engine
from engine.application.marketing import CostImport
from engine.bootstrap import marketing_for
from engine.domain.marketing.costs import CostProblem, parse_cost_rows
from engine.domain.shared.errors import CostImportError
from engine.entrypoints.schemas import LeadRow, LifecycleRow, RowError, validation_problems
from engine.settings import Settings

BATCH = 500


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


#: Longest JSONL record read (a lead is a few hundred characters).
MAX_LINE = 1_048_576


def read_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line, row) for each record; a row that cannot be parsed at all comes as a message."""
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        with path.open(encoding="utf-8-sig") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                if len(line) > MAX_LINE:
                    yield n, f"line of {len(line):,} characters; a record may have {MAX_LINE:,}"
                    continue
                try:
                    value = parse_json(line)
                except JsonInputError as e:
                    yield n, str(e)
                    continue
                yield n, value if isinstance(value, dict) else "each line must be a JSON object"
    elif path.suffix.lower() == ".csv":
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            headers = [h.strip() for h in reader.fieldnames or []]
            twice = sorted({h for h in headers if headers.count(h) > 1})
            if twice:
                raise ValueError(f"{path}:1: column {', '.join(twice)} appears more than once in the header")
            reader.fieldnames = headers
            while True:
                before = reader.line_num
                try:
                    row = next(reader)
                except StopIteration:
                    break
                except csv.Error as e:  # e.g. a field over the limit: this row only, the rest goes on
                    yield before + 1, f"unreadable row ({e}; fields may hold {csv.field_size_limit() // 1024} KiB)"
                    continue
                if None in row:
                    yield reader.line_num, "more values than header columns"
                    continue
                yield reader.line_num, {k: v for k, v in row.items() if k is not None}
    else:
        raise ValueError(f"{path}: unsupported file type {path.suffix!r} (use .csv or .jsonl)")


def count_rows(path: Path) -> int:
    with path.open(encoding="utf-8-sig") as f:
        n = sum(1 for line in f if line.strip())
    return max(n - 1, 0) if path.suffix.lower() == ".csv" else n


Batch = list[tuple[int, Any]]


Rows = Iterable[tuple[int, dict[str, Any] | str]]


def _import(
    path: Path | str,
    parse: Callable[[dict[str, Any], str], Any],
    apply: Callable[[Batch, ImportReport], None],
    progress: Callable[[int], None],
    rows: Rows | None = None,
) -> ImportReport:
    """Validate each row (of the file, or ``rows`` from elsewhere, numbered) into a command;
    apply valid ones in batches; report the rest."""
    report = ImportReport(str(path))
    batch: Batch = []
    source = Path(path).name
    for line, raw in read_rows(Path(path)) if rows is None else rows:
        report.rows += 1
        try:
            if isinstance(raw, str):
                raise RowError([("row", raw)])
            command = parse(raw, f"{source}:{line}")
        except ValidationError as e:
            report.errors += [RowProblem(str(path), line, f, m) for f, m in validation_problems(e)]
            progress(1)
            continue
        except RowError as e:
            report.errors += [RowProblem(str(path), line, f, m) for f, m in e.problems]
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
    engine: Engine,
    path: Path | str,
    phone_region: str,
    tz: ZoneInfo,
    progress: Callable[[int], None] = lambda _: None,
    rows: Rows | None = None,
) -> ImportReport:
    """Capture every valid lead row of ``path`` (or ``rows`` sent as ``path``: the API, the
    bus); invalid contact details are flagged."""

    def parse(raw: dict[str, Any], origin: str) -> Any:
        return LeadRow.model_validate(raw).to_command(phone_region, tz, origin)

    def apply(batch: Batch, report: ImportReport) -> None:
        for (line, command), outcome in zip(batch, engine.leads.capture_leads([c for _, c in batch]), strict=True):
            report.flagged += [RowProblem(str(path), line, "contact", i) for i in command.contact_issues]
            report.conflicts += [
                RowProblem(
                    str(path),
                    line,
                    c.split("=", 1)[0],
                    f"lead {str(outcome.lead_id)[:8]} has another value from its own source: kept it, "
                    "recorded this one for review (huoke leads show)",
                )
                for c in outcome.conflicts
            ]
            if outcome.error:
                report.errors.append(RowProblem(str(path), line, "lead", outcome.error))
                continue
            kind = "created" if outcome.created else "updated" if outcome.changed else "unchanged"
            setattr(report, kind, getattr(report, kind) + 1)
            report.applied.append((line, kind, str(outcome.lead_id)))

    return _import(path, parse, apply, progress, rows)


def import_lifecycle(
    engine: Engine,
    path: Path | str,
    phone_region: str,
    tz: ZoneInfo,
    progress: Callable[[int], None] = lambda _: None,
    rows: Rows | None = None,
) -> ImportReport:
    """Record every valid lifecycle row of ``path`` (or ``rows`` sent as ``path``); facts the
    domain refuses are reported."""

    def parse(raw: dict[str, Any], origin: str) -> Any:
        return LifecycleRow.model_validate(raw).to_command(phone_region, tz, origin)

    def apply(batch: Batch, report: ImportReport) -> None:
        conversions = []
        for (line, command), outcome in zip(batch, engine.leads.record_lifecycle([c for _, c in batch]), strict=True):
            if outcome.error:
                report.errors.append(RowProblem(str(path), line, "event", outcome.error))
                continue
            kind = "updated" if outcome.changed else "unchanged"
            setattr(report, kind, getattr(report, kind) + 1)
            report.applied.append((line, kind, str(outcome.lead_id)))
            if command.click_ref and command.kind == "application_submitted" and outcome.lead_id is not None:
                at = command.at or engine.clock.now()
                conversions.append(Conversion(command.click_ref, outcome.lead_id, command.application_id, at))
        record_conversions(engine.deliveries, conversions)

    return _import(path, parse, apply, progress, rows)


def import_costs(s: Settings, file: Path, by: str, clock: Any = None) -> CostImport:
    """Validate every row of a costs file and record the valid ones."""
    report = CostImport(str(file))
    numbered: list[tuple[int, dict[str, Any]]] = []
    try:
        for line, row in read_rows(file):
            report.rows += 1
            if isinstance(row, str):
                report.errors.append(CostProblem(line, "(row)", row))
                continue
            numbered.append((line, {str(k): None if v is None else str(v) for k, v in row.items()}))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise CostImportError(f"{file}: cannot read it ({e})") from e
    lines, problems = parse_cost_rows(numbered, s.currency)
    report.errors += problems
    report.errors.sort(key=lambda e: e.line)
    marketing = marketing_for(s, clock)
    try:
        return marketing.record_costs(lines, by, report)
    finally:
        marketing.close()
