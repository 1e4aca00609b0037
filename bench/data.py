"""Generated lead rows turned into capture commands, as an import validates them."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from engine.adapters.lead_rows import LeadRow
from engine.application.importing import RowError
from engine.application.leads.commands import CaptureLead


def lead_commands(rows: list[dict[str, Any]], tz: ZoneInfo, first_line: int = 2) -> list[CaptureLead]:
    """Each valid row's command; the few rows with no valid contact are left out, as an import
    would refuse them. ``first_line``: the first row's line in its file."""
    commands = []
    for line, row in enumerate(rows, first_line):
        try:
            commands.append(LeadRow.model_validate(row).to_command("CN", tz, f"bench:{line}"))
        except (ValueError, RowError):
            continue
    return commands
