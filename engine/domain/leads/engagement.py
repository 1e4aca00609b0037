"""How engaged a lead is: its clicks on tracked links, weighted by how recent they are."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

#: The engagement score's half-life: a click counts half as much after 14 days.
ENGAGEMENT_HALF_LIFE = timedelta(days=14)


def engagement_score(clicks: Iterable[datetime], now: datetime) -> float:
    """Recency-weighted human clicks: each click counts 1 on its day, halving every
    ``ENGAGEMENT_HALF_LIFE`` (3 clicks today ≈ 3.0; one click a month ago ≈ 0.23)."""
    half = ENGAGEMENT_HALF_LIFE.total_seconds()
    total = sum(float(0.5 ** (max((now - c).total_seconds(), 0.0) / half)) for c in clicks if c <= now)
    return round(total, 2)
