"""How an import's outcome looks in a terminal: the one-line count, the refused rows (file,
line, field, problem), the contact details flagged and the conflicts recorded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import RenderableType
from rich.text import Text

from engine.presentation.tables import import_summary, note, plain_table

#: Refused rows listed in the terminal (``--json`` lists every one).
SHOWN_ERRORS = 50


def import_report(doc: dict[str, Any]) -> list[RenderableType]:
    """A leads or events import (``ImportReport.as_dict``)."""
    out: list[RenderableType] = [
        import_summary(doc["file"], doc["rows"], doc["created"], f"{doc['updated']} updated", doc["unchanged"],
                       doc["refused"])
    ]  # fmt: skip
    errors = doc["errors"]
    if errors:
        table = plain_table("Refused rows (nothing of them was stored)")
        for col in ("line", "field", "problem"):
            table.add_column(col)
        for e in errors[:SHOWN_ERRORS]:
            table.add_row(str(e["line"]), e["field"], e["problem"])
        out.append(table)
        if len(errors) > SHOWN_ERRORS:
            out.append(f"… and {len(errors) - SHOWN_ERRORS} more (use --json for all)")
    if doc["flagged"]:
        out.append(
            Text.assemble(
                (f"{len(doc['flagged'])} contact detail(s) flagged and not used", "yellow"), " (see huoke leads show)"
            )
        )
    for c in doc["conflicts"]:
        out.append(
            Text.assemble(("conflict", "yellow"), f" {Path(c['file']).name}:{c['line']}: {c['field']}: {c['problem']}")
        )
    return out


def provider_rows(doc: dict[str, Any], file: Path, counted: str) -> list[RenderableType]:
    """A provider export of SMS replies or receipts: how many took effect, then each refused row."""
    done = next(v for k, v in doc.items() if k not in ("schema", "errors"))
    return [
        f"{done} {counted}; {len(doc['errors'])} row(s) refused",
        *(note(f"{file}:{p['line']}: {p['problem']}") for p in doc["errors"]),
    ]
