"""Screening: segment membership, score bands and the borrowers whose life-event segments
move with the calendar — a view of Leads (segment sizes, conversion by band, daily review)."""

from __future__ import annotations

from functools import singledispatchmethod
from typing import Any
from uuid import UUID

from eventsourcing.utils import get_topic

from engine.domain.leads.lead import Lead, told
from projections.base import SqlView, ViewProjection, sqlite_and_postgres

TOPICS = [
    get_topic(c)
    for c in (
        Lead.Captured,
        Lead.Segmented,
        Lead.Scored,
        Lead.LoanFunded,
        Lead.ApplicationDeclined,
        Lead.RepaymentMissed,
    )
]


class Screening(SqlView):
    """Who is in which segment, each lead's latest band per model and stage, and which leads
    have calendar-driven facts (loans on book, declines, arrears) to re-segment daily."""

    tables = ("segment_members", "lead_bands", "calendar_leads")
    feeds = (("leads", TOPICS),)

    def ddl(self) -> list[str]:
        return [
            "CREATE TABLE IF NOT EXISTS {t_segment_members} (segment TEXT NOT NULL, lead_id TEXT NOT NULL, "
            "PRIMARY KEY (segment, lead_id))",
            "CREATE INDEX IF NOT EXISTS segment_members_lead ON {t_segment_members} (lead_id)",
            "CREATE TABLE IF NOT EXISTS {t_lead_bands} (lead_id TEXT NOT NULL, kind TEXT NOT NULL, "
            "band TEXT NOT NULL, model_version INTEGER NOT NULL, PRIMARY KEY (lead_id, kind))",
            "CREATE TABLE IF NOT EXISTS {t_calendar_leads} (lead_id TEXT PRIMARY KEY)",
        ]

    @singledispatchmethod
    def apply(self, event: Any, cursor: Any) -> None:
        """Events this view does not read are ignored."""

    @apply.register
    def _(self, e: Lead.Captured, c: Any) -> None:
        for decided in told(e)[1:]:  # its first screening, if it records it
            self.apply_one(decided, c)

    @apply.register
    def _(self, e: Lead.Segmented, c: Any) -> None:
        lead = str(e.originator_id)
        c.execute(self.q("DELETE FROM {t_segment_members} WHERE lead_id = ?"), (lead,))
        for segment in e.segments:
            c.execute(self.q("INSERT INTO {t_segment_members} VALUES (?, ?)"), (segment, lead))

    @apply.register
    def _(self, e: Lead.Scored, c: Any) -> None:
        c.execute(
            self.q(
                "INSERT INTO {t_lead_bands} VALUES (?, ?, ?, ?) ON CONFLICT (lead_id, kind) "
                "DO UPDATE SET band = excluded.band, model_version = excluded.model_version"
            ),
            (str(e.originator_id), e.kind, e.band, e.model_version),
        )

    @apply.register(Lead.LoanFunded)
    @apply.register(Lead.ApplicationDeclined)
    @apply.register(Lead.RepaymentMissed)
    def _(self, e: Any, c: Any) -> None:
        c.execute(self.q("INSERT INTO {t_calendar_leads} VALUES (?) ON CONFLICT DO NOTHING"), (str(e.originator_id),))

    # ---- queries ---------------------------------------------------------------------------

    def segment_sizes(self) -> dict[str, int]:
        rows = self.rows("SELECT segment, COUNT(*) AS n FROM {t_segment_members} GROUP BY segment")
        return {r["segment"]: int(r["n"]) for r in rows}

    def members(self, segment: str, lead_ids: list[str]) -> set[str]:
        """Which of ``lead_ids`` are in ``segment`` now."""
        if not lead_ids:
            return set()
        found: set[str] = set()
        for i in range(0, len(lead_ids), 500):
            chunk = lead_ids[i : i + 500]
            marks = ", ".join("?" for _ in chunk)
            rows = self.rows(
                f"SELECT lead_id FROM {{t_segment_members}} WHERE segment = ? AND lead_id IN ({marks})",  # noqa: S608
                (segment, *chunk),
            )
            found |= {r["lead_id"] for r in rows}
        return found

    def bands(self) -> list[dict[str, Any]]:
        """Leads per model kind, version and band."""
        return self.rows(
            "SELECT kind, model_version, band, COUNT(*) AS leads FROM {t_lead_bands} "
            "GROUP BY kind, model_version, band ORDER BY kind, model_version, band"
        )

    def calendar_leads(self, after: UUID | None = None, limit: int = 1000) -> list[UUID]:
        rows = self.rows(
            "SELECT lead_id FROM {t_calendar_leads} WHERE lead_id > ? ORDER BY lead_id LIMIT ?",
            (str(after) if after else "", limit),
        )
        return [UUID(r["lead_id"]) for r in rows]


class ScreeningProjection(ViewProjection):
    """The eventsourcing Projection over Leads (for a ProjectionRunner process)."""

    name = "screening"
    topics = tuple(TOPICS)


ScreeningSQLite, ScreeningPostgres = sqlite_and_postgres(Screening)
