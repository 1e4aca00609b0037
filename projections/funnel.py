"""FunnelCounts: leads by stage × audience × source channel, and messages per journey step."""

from __future__ import annotations

from functools import singledispatchmethod
from typing import Any

from eventsourcing.utils import get_topic

from engine.domain.delivery.delivery import Delivery
from engine.domain.leads.lead import Lead
from engine.domain.shared.values import STAGE_ORDER, Stage
from projections.base import SqlView, ViewProjection, sqlite_and_postgres

LEAD_TOPICS = [get_topic(c) for c in (Lead.Captured, Lead.Segmented, Lead.StageChanged)]
DELIVERY_TOPICS = [
    get_topic(c) for c in (Delivery.Sent, Delivery.Failed, Delivery.Skipped, Delivery.HeldForReview, Delivery.Released)
]


class FunnelCounts(SqlView):
    """Current stage per lead, every stage each lead ever reached, and send outcomes per step."""

    tables = ("funnel_leads", "funnel_reached", "funnel_messages", "lead_sources")
    schema_version = 2  # 2: lead_sources
    feeds = (("leads", LEAD_TOPICS), ("deliveries", DELIVERY_TOPICS))

    def ddl(self) -> list[str]:
        return [
            "CREATE TABLE IF NOT EXISTS {t_funnel_leads} (lead_id TEXT PRIMARY KEY, "
            "source_channel TEXT NOT NULL, audience TEXT NOT NULL, stage TEXT NOT NULL)",
            # Where each lead came from, for filters and attribution (the first source's values).
            "CREATE TABLE IF NOT EXISTS {t_lead_sources} (lead_id TEXT PRIMARY KEY, partner TEXT NOT NULL, "
            "campaign TEXT NOT NULL, utm_source TEXT NOT NULL, utm_medium TEXT NOT NULL, utm_campaign TEXT NOT NULL, "
            "event TEXT NOT NULL, captured_at TEXT NOT NULL)",
            "CREATE INDEX IF NOT EXISTS funnel_leads_stage ON {t_funnel_leads} (stage, lead_id)",
            "CREATE TABLE IF NOT EXISTS {t_funnel_reached} (lead_id TEXT NOT NULL, "
            "stage TEXT NOT NULL, PRIMARY KEY (lead_id, stage))",
            "CREATE TABLE IF NOT EXISTS {t_funnel_messages} (journey_id TEXT NOT NULL, "
            "step TEXT NOT NULL, channel TEXT NOT NULL, outcome TEXT NOT NULL, "
            "n BIGINT NOT NULL, PRIMARY KEY (journey_id, step, channel, outcome))",
        ]

    @singledispatchmethod
    def apply(self, event: Any, cursor: Any) -> None:
        """Events this view does not read are ignored."""

    @apply.register
    def _(self, e: Lead.Captured, c: Any) -> None:
        c.execute(
            self.q("INSERT INTO {t_funnel_leads} VALUES (?, ?, 'general', 'new') ON CONFLICT (lead_id) DO NOTHING"),
            (str(e.originator_id), e.source["channel"]),
        )
        source, utm = e.source, e.source.get("utm") or {}
        c.execute(
            self.q("INSERT INTO {t_lead_sources} VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (lead_id) DO NOTHING"),
            (
                str(e.originator_id),
                *(str(source.get(k) or "") for k in ("partner", "campaign")),
                *(str(utm.get(k) or "") for k in ("source", "medium", "campaign")),
                str(source.get("event") or ""),
                e.captured_at.isoformat(),
            ),
        )
        self._reached(c, e.originator_id, Stage.NEW.value)

    @apply.register
    def _(self, e: Lead.Segmented, c: Any) -> None:
        c.execute(
            self.q("UPDATE {t_funnel_leads} SET audience = ? WHERE lead_id = ?"), (e.audience, str(e.originator_id))
        )

    @apply.register
    def _(self, e: Lead.StageChanged, c: Any) -> None:
        c.execute(self.q("UPDATE {t_funnel_leads} SET stage = ? WHERE lead_id = ?"), (e.to_stage, str(e.originator_id)))
        self._reached(c, e.originator_id, e.to_stage)

    def _reached(self, c: Any, lead_id: Any, stage: str) -> None:
        c.execute(self.q("INSERT INTO {t_funnel_reached} VALUES (?, ?) ON CONFLICT DO NOTHING"), (str(lead_id), stage))

    @apply.register
    def _(self, e: Delivery.Sent, c: Any) -> None:
        self._message(c, e, "sent")

    @apply.register
    def _(self, e: Delivery.Failed, c: Any) -> None:
        self._message(c, e, "failed" if e.permanent else "retrying")

    @apply.register
    def _(self, e: Delivery.Skipped, c: Any) -> None:
        self._message(c, e, "skipped")

    @apply.register
    def _(self, e: Delivery.HeldForReview, c: Any) -> None:
        self._message(c, e, "held for review")

    @apply.register
    def _(self, e: Delivery.Released, c: Any) -> None:
        """Released to be sent again: no longer held (its send counts when it happens)."""
        c.execute(
            self.q(
                "UPDATE {t_funnel_messages} SET n = n - 1 "
                "WHERE journey_id = ? AND step = ? AND channel = ? AND outcome = 'held for review'"
            ),
            (e.journey_id, e.step, e.channel),
        )

    def _message(self, c: Any, e: Any, outcome: str) -> None:
        c.execute(
            self.q(
                "INSERT INTO {t_funnel_messages} VALUES (?, ?, ?, ?, 1) "
                "ON CONFLICT (journey_id, step, channel, outcome) "
                "DO UPDATE SET n = {t_funnel_messages}.n + 1"
            ),
            (e.journey_id, e.step, e.channel, outcome),
        )

    # ---- queries (plain values) ------------------------------------------------------------

    def leads(self, filters: dict[str, str], after: str = "", limit: int = 100) -> list[dict[str, Any]]:
        """Leads (id order, after ``after``) matching ``filters``: stage, audience, source (the
        channel), partner; at most ``limit``."""
        columns = {"stage": "l.stage", "audience": "l.audience", "source": "l.source_channel", "partner": "s.partner"}
        where, params = "", []
        for key, value in filters.items():
            where += f" AND {columns[key]} = ?"
            params.append(value)
        return self.rows(
            "SELECT l.lead_id, l.stage, l.audience, l.source_channel, COALESCE(s.partner, '') AS partner, "  # noqa: S608
            "COALESCE(s.campaign, '') AS campaign, COALESCE(s.captured_at, '') AS captured_at "
            "FROM {t_funnel_leads} l LEFT JOIN {t_lead_sources} s ON s.lead_id = l.lead_id "
            f"WHERE l.lead_id > ?{where} ORDER BY l.lead_id LIMIT ?",
            (after, *params, limit),
        )

    def stages(self) -> list[dict[str, Any]]:
        """Leads now at each stage, by audience and source channel."""
        return self.rows(
            "SELECT stage, audience, source_channel, COUNT(*) AS leads "
            "FROM {t_funnel_leads} GROUP BY stage, audience, source_channel "
            "ORDER BY stage, audience, source_channel"
        )

    def reached(self) -> list[dict[str, Any]]:
        """Leads that ever reached each stage, by audience (the conversion funnel)."""
        return self.rows(
            "SELECT r.stage AS stage, l.audience AS audience, COUNT(*) AS leads "
            "FROM {t_funnel_reached} r JOIN {t_funnel_leads} l ON l.lead_id = r.lead_id "
            "GROUP BY r.stage, l.audience"
        )

    def messages(self) -> list[dict[str, Any]]:
        return self.rows(
            "SELECT journey_id, step, channel, outcome, n FROM {t_funnel_messages} "
            "ORDER BY journey_id, step, channel, outcome"
        )


def stage_sort_key(stage: str) -> int:
    order = [s.value for s in STAGE_ORDER] + [Stage.LOST.value]
    return order.index(stage) if stage in order else len(order)


class FunnelProjection(ViewProjection):
    """The eventsourcing Projection over Leads (for a ProjectionRunner process)."""

    name = "funnel"
    topics = tuple(LEAD_TOPICS)


class FunnelDeliveriesProjection(ViewProjection):
    """The same view fed from Deliveries (a second runner; tracking is per upstream)."""

    name = "funnel"
    topics = tuple(DELIVERY_TOPICS)


FunnelCountsSQLite, FunnelCountsPostgres = sqlite_and_postgres(FunnelCounts)
