"""Listing leads: the leads matching filters on the views (stage, audience, source, partner)
and a segment, a page at a time, by id; every match is on some page."""

from __future__ import annotations

from typing import Any

from engine.application.engine import Engine

#: Rows of the view read per step while looking for matches.
SCAN_PAGE = 1000


def matching_leads(engine: Engine, filters: dict[str, str], segment: str | None, after: str, n: int) -> list[Any]:
    """The first ``n`` leads after ``after`` (by id) matching ``filters`` and ``segment``: read a
    page at a time to the end of the view if need be, so no match is skipped."""
    found: list[dict[str, Any]] = []
    while len(found) < n:
        rows = engine.funnel.leads(filters, after, SCAN_PAGE)
        if not rows:
            break
        after = rows[-1]["lead_id"]
        if segment:
            members = engine.screening.members(segment, [r["lead_id"] for r in rows])
            found.extend(r for r in rows if r["lead_id"] in members)
        else:
            found.extend(rows)
        if len(rows) < SCAN_PAGE:
            break
    return found[:n]


def list_leads_page(
    engine: Engine, filters: dict[str, str], segment: str | None, after: str, limit: int
) -> dict[str, Any]:
    """One page of matching leads after ``after`` and the id to page on from (None at the end)."""
    page = matching_leads(engine, filters, segment, after, limit + 1)
    more = len(page) > limit
    page = page[:limit]
    return {"leads": page, "next": page[-1]["lead_id"] if more else None}
