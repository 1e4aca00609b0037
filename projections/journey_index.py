"""JourneyIndex: the due-timer schedule, enrolments by lead and by step, agent tasks and
journey outcomes (goals, exits, split arms) — a view of the Journeys log."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import singledispatchmethod
from typing import Any
from uuid import UUID

from eventsourcing.utils import get_topic

from engine.application.partitions import ALL, Partitions, bucket_of
from engine.application.ports import DueTimer
from engine.domain.journeys.agent_task import AgentTask
from engine.domain.journeys.enrolment import Enrolment
from engine.domain.journeys.lead_journeys import LeadJourneys
from projections.base import SqlView, ViewProjection, partition_filter, sqlite_and_postgres

TOPICS = [
    get_topic(c)
    for c in (
        Enrolment.Started,
        Enrolment.StepReached,
        Enrolment.WaitStarted,
        Enrolment.WaitEnded,
        Enrolment.Exited,
        Enrolment.TaskCreated,
        Enrolment.GoalReached,
        Enrolment.SplitAssigned,
        Enrolment.Migrated,
        Enrolment.MessageRequested,
        Enrolment.MessageSkipped,
        LeadJourneys.Refused,
        AgentTask.Opened,
        AgentTask.Claimed,
        AgentTask.Reassigned,
        AgentTask.Completed,
        AgentTask.Routed,
        AgentTask.RoutingHeld,
        AgentTask.Escalated,
    )
]
TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def ts(moment: datetime) -> str:
    """UTC ISO text with fixed width: sorts in time order in both dialects."""
    return moment.astimezone(UTC).strftime(TS_FORMAT)


def parse_ts(text: str) -> datetime:
    """The inverse of ``ts`` (fromisoformat: ten times strptime's speed on the hot timer path)."""
    return datetime.fromisoformat(text).astimezone(UTC)


class JourneyIndex(SqlView):
    """Due timers (indexed by due time), enrolments, agent tasks and outcome counts."""

    tables = ("due_timers", "lead_enrolments", "agent_tasks", "task_states", "task_desk", "journey_outcomes")
    feeds = (("journeys", TOPICS),)

    def ddl(self) -> list[str]:
        return [
            "CREATE TABLE IF NOT EXISTS {t_due_timers} (enrolment_id TEXT PRIMARY KEY, journey_id TEXT NOT NULL, "
            "step TEXT NOT NULL, due_at TEXT NOT NULL, bucket INTEGER NOT NULL)",
            "CREATE INDEX IF NOT EXISTS due_timers_due_order ON {t_due_timers} (due_at, enrolment_id)",
            "CREATE TABLE IF NOT EXISTS {t_lead_enrolments} (enrolment_id TEXT PRIMARY KEY, "
            "lead_id TEXT NOT NULL, journey_id TEXT NOT NULL, journey_version INTEGER NOT NULL, "
            "started_at TEXT NOT NULL, status TEXT NOT NULL, current_step TEXT, bucket INTEGER NOT NULL)",
            "CREATE INDEX IF NOT EXISTS lead_enrolments_lead ON {t_lead_enrolments} (lead_id)",
            "CREATE INDEX IF NOT EXISTS lead_enrolments_journey ON {t_lead_enrolments} (journey_id, status)",
            "CREATE TABLE IF NOT EXISTS {t_agent_tasks} (task_id TEXT PRIMARY KEY, lead_id TEXT NOT NULL, "
            "journey_id TEXT NOT NULL, step TEXT NOT NULL, kind TEXT NOT NULL, queue TEXT NOT NULL, "
            "note TEXT NOT NULL, due_at TEXT NOT NULL, created_at TEXT NOT NULL)",
            # How agents work each task (a table of its own, so older stores need no migration).
            "CREATE TABLE IF NOT EXISTS {t_task_states} (task_id TEXT PRIMARY KEY, queue TEXT NOT NULL, "
            "agent TEXT NOT NULL, outcome TEXT NOT NULL, note TEXT NOT NULL, updated_at TEXT NOT NULL)",
            # The desk's view of each task: since when it is in its queue, whom it was routed to or
            # why nobody could take it, whether it is overdue there (stores from before the desk:
            # `huoke projections rebuild index` fills it for older tasks).
            "CREATE TABLE IF NOT EXISTS {t_task_desk} (task_id TEXT PRIMARY KEY, bucket INTEGER NOT NULL, "
            "queue_since TEXT NOT NULL, routed_to TEXT NOT NULL, held_reason TEXT NOT NULL, "
            "escalated_at TEXT NOT NULL, escalations INTEGER NOT NULL)",
            "CREATE TABLE IF NOT EXISTS {t_journey_outcomes} (journey_id TEXT NOT NULL, journey_version INTEGER "
            "NOT NULL, kind TEXT NOT NULL, label TEXT NOT NULL, n BIGINT NOT NULL, "
            "PRIMARY KEY (journey_id, journey_version, kind, label))",
        ]

    @singledispatchmethod
    def apply(self, event: Any, cursor: Any) -> None:
        """Events this view does not read are ignored."""

    @apply.register
    def _(self, e: Enrolment.Started, c: Any) -> None:
        c.execute(
            self.q(
                "INSERT INTO {t_lead_enrolments} VALUES (?, ?, ?, ?, ?, 'active', NULL, ?) "
                "ON CONFLICT (enrolment_id) DO NOTHING"
            ),
            (str(e.originator_id), str(e.lead_id), e.journey_id, e.journey_version, ts(e.at), bucket_of(e.lead_id)),
        )
        self._outcome(c, e.originator_id, "entered", "re-entry" if e.entry_number > 1 else "first entry")

    @apply.register
    def _(self, e: Enrolment.StepReached, c: Any) -> None:
        c.execute(
            self.q("UPDATE {t_lead_enrolments} SET current_step = ? WHERE enrolment_id = ?"),
            (e.step, str(e.originator_id)),
        )
        self._outcome(c, e.originator_id, "reached", e.step)

    @apply.register
    def _(self, e: LeadJourneys.Refused, c: Any) -> None:
        c.execute(
            self.q(
                "INSERT INTO {t_journey_outcomes} VALUES (?, ?, 'refused', ?, 1) "
                "ON CONFLICT (journey_id, journey_version, kind, label) DO UPDATE SET n = {t_journey_outcomes}.n + 1"
            ),
            (e.journey_id, e.version, e.reason),
        )

    @apply.register
    def _(self, e: Enrolment.WaitStarted, c: Any) -> None:
        c.execute(
            self.q(
                "INSERT INTO {t_due_timers} SELECT ?, journey_id, ?, ?, bucket FROM {t_lead_enrolments} "
                "WHERE enrolment_id = ? ON CONFLICT (enrolment_id) "
                "DO UPDATE SET step = excluded.step, due_at = excluded.due_at"
            ),
            (str(e.originator_id), e.step, ts(e.due_at), str(e.originator_id)),
        )

    @apply.register
    def _(self, e: Enrolment.WaitEnded, c: Any) -> None:
        c.execute(
            self.q("DELETE FROM {t_due_timers} WHERE enrolment_id = ? AND step = ?"), (str(e.originator_id), e.step)
        )

    @apply.register
    def _(self, e: Enrolment.Migrated, c: Any) -> None:
        c.execute(self.q("DELETE FROM {t_due_timers} WHERE enrolment_id = ?"), (str(e.originator_id),))
        c.execute(
            self.q("UPDATE {t_lead_enrolments} SET journey_version = ? WHERE enrolment_id = ?"),
            (e.to_version, str(e.originator_id)),
        )

    @apply.register
    def _(self, e: Enrolment.Exited, c: Any) -> None:
        c.execute(self.q("DELETE FROM {t_due_timers} WHERE enrolment_id = ?"), (str(e.originator_id),))
        c.execute(
            self.q("UPDATE {t_lead_enrolments} SET status = ? WHERE enrolment_id = ?"),
            (f"exited: {e.reason}", str(e.originator_id)),
        )
        self._outcome(c, e.originator_id, "exit", e.reason)

    @apply.register
    def _(self, e: Enrolment.GoalReached, c: Any) -> None:
        self._outcome(c, e.originator_id, "goal", f"{e.stage}{'' if e.within_window else ' (late)'}")

    @apply.register
    def _(self, e: Enrolment.SplitAssigned, c: Any) -> None:
        self._outcome(c, e.originator_id, "split", f"{e.step}: {e.arm}")

    @apply.register
    def _(self, e: Enrolment.MessageRequested, c: Any) -> None:
        self._outcome(c, e.originator_id, "message", f"{e.channel} {e.template}")

    @apply.register
    def _(self, e: Enrolment.MessageSkipped, c: Any) -> None:
        self._outcome(c, e.originator_id, "message skipped", e.step)

    @apply.register
    def _(self, e: Enrolment.TaskCreated, c: Any) -> None:
        c.execute(
            self.q(
                "INSERT INTO {t_agent_tasks} SELECT ?, lead_id, journey_id, ?, ?, ?, ?, ?, ? "
                "FROM {t_lead_enrolments} WHERE enrolment_id = ? ON CONFLICT (task_id) DO NOTHING"
            ),
            (str(e.task_id), e.step, e.kind, e.queue, e.note, ts(e.due_at), ts(e.at), str(e.originator_id)),
        )
        c.execute(
            self.q(
                "INSERT INTO {t_task_desk} SELECT ?, bucket, ?, '', '', '', 0 FROM {t_lead_enrolments} "
                "WHERE enrolment_id = ? ON CONFLICT (task_id) DO NOTHING"
            ),
            (str(e.task_id), ts(e.at), str(e.originator_id)),
        )
        self._outcome(c, e.originator_id, "task", f"{e.kind} {e.queue}")

    @apply.register
    def _(self, e: AgentTask.Opened, c: Any) -> None:
        c.execute(
            self.q("INSERT INTO {t_task_states} VALUES (?, ?, '', '', '', ?) ON CONFLICT (task_id) DO NOTHING"),
            (str(e.originator_id), e.queue, ts(e.at)),
        )

    @apply.register
    def _(self, e: AgentTask.Claimed, c: Any) -> None:
        c.execute(
            self.q("UPDATE {t_task_states} SET agent = ?, updated_at = ? WHERE task_id = ?"),
            (e.agent, ts(e.at), str(e.originator_id)),
        )

    @apply.register
    def _(self, e: AgentTask.Reassigned, c: Any) -> None:
        c.execute(
            self.q("UPDATE {t_task_states} SET queue = ?, agent = ?, updated_at = ? WHERE task_id = ?"),
            (e.queue, e.agent, ts(e.at), str(e.originator_id)),
        )
        self._new_stint(c, e.originator_id, e.at)

    @apply.register
    def _(self, e: AgentTask.Completed, c: Any) -> None:
        c.execute(
            self.q(
                "UPDATE {t_task_states} SET outcome = ?, note = ?, agent = CASE WHEN agent = '' THEN ? ELSE agent END, "
                "updated_at = ? WHERE task_id = ?"
            ),
            (e.outcome, e.note, e.by, ts(e.at), str(e.originator_id)),
        )

    @apply.register
    def _(self, e: AgentTask.Routed, c: Any) -> None:
        c.execute(
            self.q("UPDATE {t_task_desk} SET routed_to = ?, held_reason = '' WHERE task_id = ?"),
            (e.agent, str(e.originator_id)),
        )

    @apply.register
    def _(self, e: AgentTask.RoutingHeld, c: Any) -> None:
        c.execute(
            self.q("UPDATE {t_task_desk} SET held_reason = ? WHERE task_id = ?"), (e.reason, str(e.originator_id))
        )

    @apply.register
    def _(self, e: AgentTask.Escalated, c: Any) -> None:
        task = str(e.originator_id)
        c.execute(self.q("UPDATE {t_task_desk} SET escalations = escalations + 1 WHERE task_id = ?"), (task,))
        if e.to_queue == e.from_queue:  # flagged where it is
            c.execute(self.q("UPDATE {t_task_desk} SET escalated_at = ? WHERE task_id = ?"), (ts(e.at), task))
            return
        c.execute(
            self.q("UPDATE {t_task_states} SET queue = ?, agent = '', updated_at = ? WHERE task_id = ?"),
            (e.to_queue, ts(e.at), task),
        )
        self._new_stint(c, e.originator_id, e.at)

    def _new_stint(self, c: Any, task_id: Any, at: datetime) -> None:
        """The task arrived in a queue (handed on or escalated): routed and timed afresh."""
        c.execute(
            self.q(
                "UPDATE {t_task_desk} SET queue_since = ?, routed_to = '', held_reason = '', escalated_at = '' "
                "WHERE task_id = ?"
            ),
            (ts(at), str(task_id)),
        )

    def _outcome(self, c: Any, enrolment_id: Any, kind: str, label: str) -> None:
        c.execute(
            self.q(
                "INSERT INTO {t_journey_outcomes} SELECT journey_id, journey_version, ?, ?, 1 "
                "FROM {t_lead_enrolments} WHERE enrolment_id = ? "
                "ON CONFLICT (journey_id, journey_version, kind, label) "
                "DO UPDATE SET n = {t_journey_outcomes}.n + 1"
            ),
            (kind, label, str(enrolment_id)),
        )

    # ---- queries ---------------------------------------------------------------------------

    def due(
        self, until: datetime, limit: int = 500, exclude: Sequence[str] = (), parts: Partitions = ALL
    ) -> list[DueTimer]:
        """The earliest timers of ``parts`` due at or before ``until`` (paused journeys excluded)."""
        marks = ", ".join("?" for _ in exclude)
        where = f" AND journey_id NOT IN ({marks})" if exclude else ""
        owned, params = partition_filter(parts)
        sql = f"SELECT enrolment_id, step, due_at FROM {{t_due_timers}} WHERE due_at <= ?{where}{owned}"  # noqa: S608
        rows = self.rows(sql + " ORDER BY due_at, enrolment_id LIMIT ?", (ts(until), *exclude, *params, limit))
        return [DueTimer(UUID(r["enrolment_id"]), r["step"], parse_ts(r["due_at"])) for r in rows]

    def next_due(self, parts: Partitions = ALL) -> datetime | None:
        owned, params = partition_filter(parts)
        rows = self.rows(f"SELECT MIN(due_at) AS due FROM {{t_due_timers}} WHERE 1 = 1{owned}", params)  # noqa: S608
        return parse_ts(rows[0]["due"]) if rows and rows[0]["due"] else None

    def pending_count(self) -> int:
        return int(self.rows("SELECT COUNT(*) AS n FROM {t_due_timers}")[0]["n"])

    def enrolments_of(self, lead_id: UUID) -> list[dict[str, Any]]:
        return self.rows(
            "SELECT enrolment_id, journey_id, journey_version, started_at, status, current_step "
            "FROM {t_lead_enrolments} WHERE lead_id = ? ORDER BY started_at",
            (str(lead_id),),
        )

    def active_in(self, journey_id: str) -> list[dict[str, Any]]:
        return self.rows(
            "SELECT enrolment_id, journey_version, current_step FROM {t_lead_enrolments} "
            "WHERE journey_id = ? AND status = 'active' ORDER BY enrolment_id",
            (journey_id,),
        )

    def step_counts(self, journey_id: str, version: int | None = None) -> dict[str, int]:
        """Active enrolments now at each step."""
        sql = "SELECT current_step, COUNT(*) AS n FROM {t_lead_enrolments} WHERE journey_id = ? AND status = 'active'"
        params: list[Any] = [journey_id]
        if version is not None:
            sql += " AND journey_version = ?"
            params.append(version)
        return {r["current_step"]: int(r["n"]) for r in self.rows(sql + " GROUP BY current_step", params)}

    def outcomes(self, journey_id: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT journey_id, journey_version, kind, label, n FROM {t_journey_outcomes}"
        params: tuple[Any, ...] = ()
        if journey_id:
            sql, params = sql + " WHERE journey_id = ?", (journey_id,)
        return self.rows(sql + " ORDER BY journey_id, journey_version, kind, label", params)

    _TASKS = (
        "SELECT t.task_id, t.lead_id, t.journey_id, t.step, t.kind, COALESCE(s.queue, t.queue) AS queue, "
        "t.note, t.due_at, t.created_at, COALESCE(s.agent, '') AS agent, COALESCE(s.outcome, '') AS outcome, "
        "COALESCE(d.routed_to, '') AS routed_to, COALESCE(d.held_reason, '') AS held_reason, "
        "COALESCE(d.queue_since, t.created_at) AS queue_since, COALESCE(d.escalated_at, '') AS escalated_at, "
        "COALESCE(d.escalations, 0) AS escalations, "
        "CASE WHEN COALESCE(s.outcome, '') <> '' THEN 'done' WHEN COALESCE(s.agent, '') <> '' THEN 'claimed' "
        "WHEN COALESCE(d.routed_to, '') <> '' THEN 'assigned' ELSE 'open' END AS status "
        "FROM {t_agent_tasks} t LEFT JOIN {t_task_states} s ON s.task_id = t.task_id "
        "LEFT JOIN {t_task_desk} d ON d.task_id = t.task_id WHERE 1 = 1"
    )

    def tasks(self, queue: str | None = None, include_done: bool = False) -> list[dict[str, Any]]:
        """Agent tasks by due time, with how they are being worked: status open, assigned (routed
        to an officer), claimed or done; the queue and agent now; the outcome when done."""
        sql, params = self._TASKS, []
        if queue:
            sql += " AND COALESCE(s.queue, t.queue) = ?"
            params.append(queue)
        if not include_done:
            sql += " AND COALESCE(s.outcome, '') = ''"
        return self.rows(sql + " ORDER BY t.due_at, t.task_id", params)

    def unrouted_tasks(
        self, queues: Sequence[str], parts: Partitions = ALL, limit: int = 500, held: bool = False
    ) -> list[dict[str, Any]]:
        """Open tasks of ``queues`` that no officer holds, oldest in their queue first: the new
        ones, or (``held``) those already waiting with a reason."""
        if not queues:
            return []
        owned, params = partition_filter(parts, "d.bucket")
        marks = ", ".join("?" for _ in queues)
        waiting = "<>" if held else "="
        sql = (
            f"{self._TASKS} AND COALESCE(s.outcome, '') = '' AND COALESCE(s.agent, '') = '' "
            f"AND d.routed_to = '' AND d.held_reason {waiting} '' AND COALESCE(s.queue, t.queue) IN ({marks}){owned}"
        )
        return self.rows(sql + " ORDER BY queue_since, t.task_id LIMIT ?", (*queues, *params, limit))

    def agent_loads(self) -> dict[str, int]:
        """Open tasks each officer holds (claimed, or routed to them and not yet claimed)."""
        rows = self.rows(
            "SELECT CASE WHEN COALESCE(s.agent, '') <> '' THEN s.agent ELSE d.routed_to END AS who, COUNT(*) AS n "
            "FROM {t_task_desk} d LEFT JOIN {t_task_states} s ON s.task_id = d.task_id "
            "WHERE COALESCE(s.outcome, '') = '' GROUP BY 1"
        )
        return {r["who"]: int(r["n"]) for r in rows if r["who"]}

    def _overdue_clause(self, slas: dict[str, Any], now: datetime) -> tuple[str, list[Any]]:
        cases = " OR ".join("(COALESCE(s.queue, t.queue) = ? AND d.queue_since <= ?)" for _ in slas)
        params: list[Any] = []
        for queue, sla in sorted(slas.items()):
            params += [queue, ts(now - sla)]
        return f" AND COALESCE(s.outcome, '') = '' AND d.escalated_at = '' AND ({cases})", params

    def overdue_tasks(
        self, slas: dict[str, Any], now: datetime, parts: Partitions = ALL, limit: int = 500
    ) -> list[dict[str, Any]]:
        """Open tasks not yet escalated in their queue whose service level (``slas``: queue →
        timedelta) has run out by ``now``."""
        if not slas:
            return []
        clause, params = self._overdue_clause(slas, now)
        owned, owned_params = partition_filter(parts, "d.bucket")
        sql = f"{self._TASKS}{clause}{owned}"
        return self.rows(sql + " ORDER BY queue_since, t.task_id LIMIT ?", (*params, *owned_params, limit))

    def next_task_deadline(self, slas: dict[str, Any], parts: Partitions = ALL) -> datetime | None:
        """When the next open task runs out of its queue's service level."""
        if not slas:
            return None
        owned, params = partition_filter(parts, "d.bucket")
        sql = (
            "SELECT COALESCE(s.queue, t.queue) AS queue, MIN(d.queue_since) AS since FROM {t_agent_tasks} t "
            "JOIN {t_task_desk} d ON d.task_id = t.task_id LEFT JOIN {t_task_states} s ON s.task_id = t.task_id "
            "WHERE COALESCE(s.outcome, '') = '' AND d.escalated_at = ''"
        )
        rows = self.rows(f"{sql}{owned} GROUP BY COALESCE(s.queue, t.queue)", params)
        deadlines = [parse_ts(r["since"]) + slas[r["queue"]] for r in rows if r["queue"] in slas and r["since"]]
        return min(deadlines, default=None)


class JourneyIndexProjection(ViewProjection):
    """The eventsourcing Projection over Journeys (for a ProjectionRunner process)."""

    name = "journey_index"
    topics = tuple(TOPICS)


JourneyIndexSQLite, JourneyIndexPostgres = sqlite_and_postgres(JourneyIndex)
