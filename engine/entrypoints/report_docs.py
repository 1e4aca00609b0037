"""Report documents now or as of a moment: the catalogue and filters are the application's
(``application.report_catalog``); here the views as they stood then are rebuilt and the
marketing costs read (the composition the CLI, the API and the dashboard share)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from engine.application.analytics import ALL_LEADS, Scope
from engine.application.engine import Engine
from engine.application.report_catalog import (
    REPORT_VIEWS,
    REPORTS,
    FilterError,
    ReportName,
    build_report,
    check_day,
    check_journey,
    scope_from,
)
from engine.bootstrap import engine_as_of, marketing_for
from engine.settings import Settings

__all__ = [
    "REPORTS",
    "REPORT_VIEWS",
    "FilterError",
    "ReportName",
    "check_day",
    "check_journey",
    "report_document",
    "scope_from",
]


def marketing_costs(settings: Settings, as_of: datetime | None = None) -> list[Any]:
    marketing = marketing_for(settings)
    try:
        return marketing.costs(as_of)
    finally:
        marketing.close()


def report_document(
    name: ReportName,
    engine: Engine,
    settings: Settings,
    scope: Scope = ALL_LEADS,
    as_of: datetime | None = None,
    margin: Decimal | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """The ``name`` report for ``scope``: from the views now, or (``as_of``) from views rebuilt
    from the event log as it stood then."""
    costs = lambda: marketing_costs(settings, as_of)  # noqa: E731 - read only by the costs report
    if as_of is None:
        engine.refresh_views()
        return build_report(name, engine, settings, scope, margin, costs)
    with engine_as_of(settings, engine, as_of, REPORT_VIEWS[name], progress=progress) as then:
        doc = build_report(name, then, settings, scope, margin, costs)
    return {**doc, "as_of": as_of.isoformat()}
