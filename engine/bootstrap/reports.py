"""Report documents now or as of a moment, and the dashboard's page document: the catalogue and
filters are the application's (``application.report_catalog``); here the views as they stood then
are rebuilt and the marketing costs read (the composition the CLI, the API and the dashboard
share)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from engine.application.analytics import ALL_LEADS, Scope
from engine.application.engine import Engine
from engine.application.report_catalog import REPORT_VIEWS, ReportName, build_report
from engine.bootstrap.moments import engine_as_of
from engine.settings import Settings

DASHBOARD_SCHEMA = "huoke.dashboard/1"
#: The report documents the page shows.
PAGE_REPORTS: tuple[ReportName, ...] = (
    "attribution",
    "costs",
    "experiments",
    "engagement",
    "daily",
    "scores",
    "flows",
    "tasks",
    "referrals",
)


def marketing_costs(settings: Settings, as_of: datetime | None = None) -> list[Any]:
    """Every marketing cost as last revised (or as it stood ``as_of``)."""
    from engine.bootstrap import marketing_for

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


def dashboard_data(engine: Engine, settings: Settings, scope: Scope) -> dict[str, Any]:
    """Every report the page shows, for ``scope``: the same documents as the CLI and the API."""
    engine.refresh_views()
    page = dataclasses.replace(engine, views_owned=frozenset())  # caught up once, above
    docs: dict[str, Any] = {name: report_document(name, page, settings, scope) for name in PAGE_REPORTS}
    sent = {"email": 0, "sms": 0, "webhook": 0}  # what the funnel report and the outboxes count
    for m in engine.funnel.messages():
        if m["outcome"] == "sent":
            sent[m["channel"]] = sent.get(m["channel"], 0) + int(m["n"])
    return {"schema": DASHBOARD_SCHEMA, "scope": scope.as_dict(), "currency": settings.currency, "sent": sent, **docs}


def costs_document(settings: Settings, engine: Engine) -> dict[str, Any]:
    """Every marketing cost as last revised and the referral rewards paid (from the ledger),
    each with its period as people write it."""
    from engine.application.analytics import referral_costs

    costs = [*marketing_costs(settings), *referral_costs(engine)]
    rows = [{**c.as_dict(), "period_label": c.period.label} for c in costs]
    return {"schema": "huoke.costs/1", "currency": settings.currency, "costs": rows}
