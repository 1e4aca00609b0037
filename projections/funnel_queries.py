"""The funnel view's read side: the plain-value queries the reports and the use cases ask (its
tables and the events that fill them are ``projections.funnel``)."""

from __future__ import annotations

from typing import Any

from engine.domain.marketing.costs import DIMENSIONS
from engine.domain.shared.values import MILESTONES
from projections.base import SqlView, amount_of

#: What each row of the cube counts (and ``volume``, the funded amount).
CUBE_COUNTS = ("leads", *MILESTONES, "multi_touch", "loans")


class FunnelQueries(SqlView):
    """Queries over the funnel's tables (plain values; the view class adds the writes)."""

    # ---- queries (plain values) ------------------------------------------------------------

    def leads(self, filters: dict[str, str], after: str = "", limit: int = 100) -> list[dict[str, Any]]:
        """Leads (id order, after ``after``) matching ``filters``: stage, audience, source (the
        channel), partner; at most ``limit``."""
        columns = {
            "stage": "l.stage",
            "audience": "l.audience",
            "source": "l.source_channel",
            "partner": "f.first_partner",
        }
        where, params = "", []
        for key, value in filters.items():
            where += f" AND {columns[key]} = ?"
            params.append(value)
        return self.rows(
            "SELECT l.lead_id, l.stage, l.audience, l.source_channel, COALESCE(f.first_partner, '') AS partner, "  # noqa: S608
            "COALESCE(f.first_campaign, '') AS campaign, COALESCE(f.captured_at, '') AS captured_at "
            "FROM {t_funnel_leads} l LEFT JOIN {t_lead_facts} f ON f.lead_id = l.lead_id "
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
        return self.rows("SELECT stage, audience, n AS leads FROM {t_reached_counts} WHERE n > 0")

    def messages(self) -> list[dict[str, Any]]:
        return self.rows(
            "SELECT journey_id, step, channel, outcome, n FROM {t_funnel_messages} "
            "ORDER BY journey_id, step, channel, outcome"
        )

    def last_clicks(self) -> list[dict[str, Any]]:
        """Per journey step: leads whose last click before they first applied was on its message
        (last-click attribution of applications)."""
        return self.rows(
            "SELECT c.journey_id, c.step, COUNT(*) AS applications FROM {t_message_clicks} c "
            "JOIN {t_lead_facts} f ON f.lead_id = c.lead_id "
            "WHERE c.kind = 'human' AND f.applied_at IS NOT NULL AND c.at <= f.applied_at AND c.at = ("
            "SELECT MAX(l.at) FROM {t_message_clicks} l WHERE l.lead_id = c.lead_id AND l.kind = 'human' "
            "AND l.at <= f.applied_at) GROUP BY c.journey_id, c.step ORDER BY c.journey_id, c.step"
        )

    def clicks_then_applied(self) -> list[dict[str, Any]]:
        """Per journey step: messages a person clicked, and how many of those leads applied after
        their click."""
        return self.rows(
            "SELECT c.journey_id, c.step, COUNT(*) AS clicked, "
            "SUM(CASE WHEN f.applied_at IS NOT NULL AND f.applied_at >= c.at THEN 1 ELSE 0 END) AS applied "
            "FROM {t_message_clicks} c LEFT JOIN {t_lead_facts} f ON f.lead_id = c.lead_id "
            "WHERE c.kind = 'human' GROUP BY c.journey_id, c.step ORDER BY c.journey_id, c.step"
        )

    # ---- the marketing facts ----------------------------------------------------------------

    @staticmethod
    def _where(since: str | None, until: str | None, **equal: str | None) -> tuple[str, list[Any]]:
        """`` WHERE …`` for days ``since``..``until`` (inclusive) and columns equal to values
        (None or empty: not filtered)."""
        clauses = [("day >= ?", since), ("day <= ?", until), *((f"{k} = ?", v) for k, v in equal.items())]
        used = [(clause, value) for clause, value in clauses if value]
        return " WHERE 1 = 1" + "".join(f" AND {clause}" for clause, _ in used), [value for _, value in used]

    def cube(
        self, touch: str = "first", since: str | None = None, until: str | None = None, channel: str | None = None
    ) -> list[dict[str, Any]]:
        """Leads captured per day (the lender's, ``since``..``until``) by attribution (``touch``:
        first or last; ``channel``: of that touch), and how many of them reached each stage, with
        loans and volume funded."""
        where, params = self._where(since, until, touch="first" if touch == "first" else "last", channel=channel)
        columns = ", ".join(("day", *DIMENSIONS, *CUBE_COUNTS, "volume"))
        rows = self.rows(f"SELECT {columns} FROM {{t_lead_cube}}{where} AND leads > 0", params)  # noqa: S608
        return [{**r, "volume": amount_of(r["volume"])} for r in rows]

    def daily(
        self, since: str | None = None, until: str | None = None, channel: str | None = None
    ) -> list[dict[str, Any]]:
        """Activity per day: leads captured, stages first reached, lost, loans funded (n, amount)."""
        where, params = self._where(since, until, channel=channel)
        rows = self.rows(
            f"SELECT day, measure, SUM(n) AS n, SUM(amount) AS amount FROM {{t_daily_counts}}{where} "  # noqa: S608
            "GROUP BY day, measure ORDER BY day, measure",
            params,
        )
        return [{**r, "amount": amount_of(r["amount"])} for r in rows]

    def daily_messages(
        self, since: str | None = None, until: str | None = None, journey: str | None = None
    ) -> list[dict[str, Any]]:
        """Messages sent, failed and skipped per day and channel."""
        where, params = self._where(since, until, journey_id=journey)
        return self.rows(
            f"SELECT day, channel, outcome, SUM(n) AS n FROM {{t_daily_messages}}{where} "  # noqa: S608
            "GROUP BY day, channel, outcome ORDER BY day, channel, outcome",
            params,
        )

    def score_bands(
        self, since: str | None = None, until: str | None = None, channel: str | None = None
    ) -> list[dict[str, Any]]:
        """Leads per score kind and band (their latest score), and how many applied and funded."""
        where, params = self._where(since, until, channel=channel)
        return self.rows(
            "SELECT kind, band, SUM(leads) AS leads, SUM(applied) AS applied, SUM(funded) AS funded "  # noqa: S608
            f"FROM {{t_band_counts}}{where} GROUP BY kind, band HAVING SUM(leads) > 0 ORDER BY kind, band",
            params,
        )

    def captured_between(self, since: str, until: str | None = None, limit: int = 5000) -> list[str]:
        """The leads captured on the lender's days ``since``..``until``, newest first (at most
        ``limit``): the recent population a model is monitored on."""
        where, params = " WHERE captured_day >= ?", [since]
        if until:
            where, params = where + " AND captured_day <= ?", [*params, until]
        rows = self.rows(
            f"SELECT lead_id FROM {{t_lead_facts}}{where} ORDER BY captured_day DESC, lead_id LIMIT ?",  # noqa: S608
            [*params, limit],
        )
        return [str(r["lead_id"]) for r in rows]

    def split_assignments(self, journey_id: str) -> list[dict[str, Any]]:
        """Every split assignment of ``journey_id`` (lead, step, arm, when), oldest first: the
        random experiment an uplift model learns from."""
        return self.rows(
            "SELECT lead_id, step, arm, assigned_at FROM {t_split_arms} WHERE journey_id = ? "
            "ORDER BY assigned_at, enrolment_id",
            [journey_id],
        )

    def arms(
        self,
        journey_id: str,
        windows: dict[str, float | None],
        since: str | None = None,
        until: str | None = None,
        band_of: str | None = None,
    ) -> list[dict[str, Any]]:
        """Per split step and arm of ``journey_id``: leads assigned, and how many then reached each
        stage in ``windows`` (stage → seconds after the assignment; None: any time). With
        ``band_of`` (a score kind), per band of the leads' current score of that kind too."""
        cases: list[str] = []
        params: list[Any] = []
        for stage, window in windows.items():
            if stage not in (*MILESTONES, "clicked"):
                continue
            if window is None:
                cases.append(f"COUNT({stage}_after) AS {stage}")
            else:
                cases.append(f"SUM(CASE WHEN {stage}_after <= ? THEN 1 ELSE 0 END) AS {stage}")
                params.append(window)
        joined, band = "{t_split_arms} a", ""
        if band_of is not None:
            joined += " JOIN {t_score_bands} b ON b.lead_id = a.lead_id AND b.kind = ?"
            band = ", b.band AS band"
            params.append(band_of)
        where = " WHERE a.journey_id = ?"
        params.append(journey_id)
        for clause, value in ((" AND a.assigned_at >= ?", since), (" AND a.assigned_at < ?", until)):
            if value:
                where, params = where + clause, [*params, value]
        reached = "".join(f", {c}" for c in cases)
        group = "step, arm" + (", band" if band else "")
        return self.rows(
            f"SELECT step, arm{band}, COUNT(*) AS leads{reached} FROM {joined}{where} "  # noqa: S608
            f"GROUP BY {group} ORDER BY {group}",
            params,
        )
