"""JourneyIndex: the due-timer schedule and each lead's enrolments (a view of Journeys)."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import singledispatchmethod
from typing import Any
from uuid import UUID

from eventsourcing.utils import get_topic

from engine.application.journeys import DueTimer
from engine.domain.enrolment import Enrolment
from projections.base import SqlView, ViewProjection, sqlite_and_postgres

TOPICS = [get_topic(c) for c in (Enrolment.Started, Enrolment.WaitStarted, Enrolment.WaitEnded, Enrolment.Exited)]


def _ts(moment: datetime) -> str:
    """UTC ISO text with fixed width: sorts in time order in both dialects."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class JourneyIndex(SqlView):
    """Due timers (indexed by due time) and enrolments by lead."""

    tables = ("due_timers", "lead_enrolments")

    def ddl(self) -> list[str]:
        return [
            "CREATE TABLE IF NOT EXISTS {t_due_timers} (enrolment_id TEXT PRIMARY KEY, "
            "step TEXT NOT NULL, due_at TEXT NOT NULL)",
            "CREATE INDEX IF NOT EXISTS due_timers_due_at ON {t_due_timers} (due_at)",
            "CREATE TABLE IF NOT EXISTS {t_lead_enrolments} (enrolment_id TEXT PRIMARY KEY, "
            "lead_id TEXT NOT NULL, journey_id TEXT NOT NULL, journey_version INTEGER NOT NULL, "
            "started_at TEXT NOT NULL, status TEXT NOT NULL)",
            "CREATE INDEX IF NOT EXISTS lead_enrolments_lead ON {t_lead_enrolments} (lead_id)",
        ]

    @singledispatchmethod
    def apply(self, event: Any, cursor: Any) -> None:
        """Events this view does not read are ignored."""

    @apply.register
    def _(self, e: Enrolment.Started, c: Any) -> None:
        c.execute(
            self.q(
                "INSERT INTO {t_lead_enrolments} VALUES (?, ?, ?, ?, ?, 'active') ON CONFLICT (enrolment_id) DO NOTHING"
            ),
            (str(e.originator_id), str(e.lead_id), e.journey_id, e.journey_version, _ts(e.at)),
        )

    @apply.register
    def _(self, e: Enrolment.WaitStarted, c: Any) -> None:
        c.execute(
            self.q(
                "INSERT INTO {t_due_timers} VALUES (?, ?, ?) ON CONFLICT (enrolment_id) "
                "DO UPDATE SET step = excluded.step, due_at = excluded.due_at"
            ),
            (str(e.originator_id), e.step, _ts(e.due_at)),
        )

    @apply.register
    def _(self, e: Enrolment.WaitEnded, c: Any) -> None:
        c.execute(
            self.q("DELETE FROM {t_due_timers} WHERE enrolment_id = ? AND step = ?"), (str(e.originator_id), e.step)
        )

    @apply.register
    def _(self, e: Enrolment.Exited, c: Any) -> None:
        c.execute(self.q("DELETE FROM {t_due_timers} WHERE enrolment_id = ?"), (str(e.originator_id),))
        c.execute(
            self.q("UPDATE {t_lead_enrolments} SET status = ? WHERE enrolment_id = ?"),
            (f"exited: {e.reason}", str(e.originator_id)),
        )

    # ---- queries ---------------------------------------------------------------------------

    def due(self, until: datetime, limit: int = 500) -> list[DueTimer]:
        """The earliest timers due at or before ``until``."""
        rows = self.rows(
            "SELECT enrolment_id, step, due_at FROM {t_due_timers} WHERE due_at <= ? "
            "ORDER BY due_at, enrolment_id LIMIT ?",
            (_ts(until), limit),
        )
        return [
            DueTimer(
                UUID(r["enrolment_id"]),
                r["step"],
                datetime.strptime(r["due_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC),
            )
            for r in rows
        ]

    def pending_count(self) -> int:
        return int(self.rows("SELECT COUNT(*) AS n FROM {t_due_timers}")[0]["n"])

    def enrolments_of(self, lead_id: UUID) -> list[dict[str, Any]]:
        return self.rows(
            "SELECT enrolment_id, journey_id, journey_version, started_at, status "
            "FROM {t_lead_enrolments} WHERE lead_id = ? ORDER BY started_at",
            (str(lead_id),),
        )

    def step_counts(self) -> list[dict[str, Any]]:
        return self.rows(
            "SELECT journey_id, status, COUNT(*) AS n FROM {t_lead_enrolments} "
            "GROUP BY journey_id, status ORDER BY journey_id, status"
        )


class JourneyIndexProjection(ViewProjection):
    """The eventsourcing Projection over Journeys (for a ProjectionRunner process)."""

    name = "journey_index"
    topics = tuple(TOPICS)


JourneyIndexSQLite, JourneyIndexPostgres = sqlite_and_postgres(JourneyIndex)
