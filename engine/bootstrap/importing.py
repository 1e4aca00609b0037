"""Imports as the CLI, the API and the bus start them — composition: a file (or rows sent in a
request or a message) read and parsed by the adapters and applied by the use cases in
``application.importing``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from engine.adapters.lead_rows import lead_parser, lead_ref, lifecycle_parser, normalise_phone
from engine.adapters.row_files import count_rows, read_rows
from engine.application import importing
from engine.application.engine import Engine
from engine.application.importing import ImportReport, ReplyImport, Rows
from engine.application.journeys.simulation import Arrival, arrivals_from_rows
from engine.application.marketing import CostImport
from engine.domain.shared.errors import CostImportError
from engine.settings import Settings

#: A lead file this long is captured on both cores on an embedded store (the helper process
#: takes half of each batch once it is up, about a second after the import starts).
IMPORT_HELPER_FROM = 2_000

__all__ = [
    "IMPORT_HELPER_FROM",
    "ImportReport",
    "arrivals_from_files",
    "count_rows",
    "find_lead",
    "import_costs",
    "import_leads",
    "import_lifecycle",
    "import_sms_receipts",
    "import_sms_replies",
    "read_rows",
]


def import_leads(
    engine: Engine,
    path: Path | str,
    phone_region: str,
    tz: ZoneInfo,
    progress: Callable[[int], None] = lambda _: None,
    rows: Rows | None = None,
) -> ImportReport:
    """Capture every valid lead row of ``path`` (or ``rows`` sent as ``path``: the API, the bus)."""
    found = read_rows(Path(path)) if rows is None else rows
    return importing.import_leads(engine, str(path), found, lead_parser(phone_region, tz), progress)


def import_lifecycle(
    engine: Engine,
    path: Path | str,
    phone_region: str,
    tz: ZoneInfo,
    progress: Callable[[int], None] = lambda _: None,
    rows: Rows | None = None,
) -> ImportReport:
    """Record every valid lifecycle row of ``path`` (or ``rows`` sent as ``path``)."""
    found = read_rows(Path(path)) if rows is None else rows
    return importing.import_lifecycle(engine, str(path), found, lifecycle_parser(phone_region, tz), progress)


def import_costs(s: Settings, file: Path, by: str, clock: Any = None) -> CostImport:
    """Validate every row of a costs file and record the valid ones."""
    from engine.bootstrap import marketing_for

    marketing = marketing_for(s, clock)
    try:
        try:
            rows = list(read_rows(file))
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise CostImportError(f"{file}: cannot read it ({e})") from e
        return importing.import_costs(marketing, str(file), rows, by, s.currency)
    finally:
        marketing.close()


def import_sms_replies(engine: Engine, file: Path, phone_region: str) -> ReplyImport:
    """Apply the opt-outs in a provider's export of SMS replies."""
    return importing.import_sms_replies(engine, read_rows(file), lambda raw: normalise_phone(raw, phone_region, []))


def import_sms_receipts(engine: Engine, file: Path) -> ReplyImport:
    """Record the delivery receipts in a provider's export."""
    return importing.import_sms_receipts(engine, read_rows(file))


def arrivals_from_files(leads: Path, events: Path | None, phone_region: str, tz: ZoneInfo) -> list[Arrival]:
    """A backtest's arrivals from a leads file and, optionally, a lifecycle events file."""
    return arrivals_from_rows(
        read_rows(leads),
        read_rows(events) if events else [],
        lead_parser(phone_region, tz),
        lifecycle_parser(phone_region, tz),
        (leads.name, str(events)),
        datetime.now(tz),
    )


def find_lead(engine: Engine, ref: str, phone_region: str) -> UUID:
    """A lead by its id, phone number, e-mail or source_channel:external_id (``ValueError``
    when ``ref`` is none of these, ``LeadNotFoundError`` when no lead has it)."""
    return engine.leads.find_lead(lead_ref(ref, phone_region))
