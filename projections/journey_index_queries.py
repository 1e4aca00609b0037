"""The journey index's read side: due timers, enrolments, tasks and their deadlines, outcomes by
step (its tables and the events that fill them are ``projections.journey_index``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from engine.application.partitions import ALL, Partitions
from engine.application.ports import DueTimer
from projections.base import SqlView, partition_filter

TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def ts(moment: datetime) -> str:
    """UTC ISO text with fixed width: sorts in time order in both dialects."""
    return moment.astimezone(UTC).strftime(TS_FORMAT)


def parse_ts(text: str) -> datetime:
    """The inverse of ``ts`` (fromisoformat: ten times strptime's speed on the hot timer path)."""
    return datetime.fromisoformat(text).astimezone(UTC)


class JourneyIndexQueries(SqlView):
    """Queries over the journey index's tables (the view class adds the writes)."""

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
        "SELECT t.task_id, t.lead_id, t.journey_id, t.step, t.kind, d.queue, t.note, t.due_at, t.created_at, "
        "d.agent, d.outcome, d.routed_to, d.held_reason, d.queue_since, d.escalated_at, d.escalations, "
        "CASE WHEN d.outcome <> '' THEN 'done' WHEN d.agent <> '' THEN 'claimed' "
        "WHEN d.routed_to <> '' THEN 'assigned' ELSE 'open' END AS status "
        "FROM {t_agent_tasks} t JOIN {t_desk_tasks} d ON d.task_id = t.task_id WHERE 1 = 1"
    )
    #: What the desk reads of a task (one table, no joins: it asks on every pass).
    _DESK = "SELECT task_id, lead_id, queue, queue_since, held_reason FROM {t_desk_tasks} WHERE outcome = ''"

    def tasks(self, queue: str | None = None, include_done: bool = False) -> list[dict[str, Any]]:
        """Agent tasks by due time, with how they are being worked: status open, assigned (routed
        to an officer), claimed or done; the queue and agent now; the outcome when done."""
        sql, params = self._TASKS, []
        if queue:
            sql += " AND d.queue = ?"
            params.append(queue)
        if not include_done:
            sql += " AND d.outcome = ''"
        return self.rows(sql + " ORDER BY t.due_at, t.task_id", params)

    def task_facts(self) -> list[dict[str, Any]]:
        """Every task's queue now (or the one it ended in), the queue it was created in, when it
        was created and arrived where it is, escalations, outcome and when it was last worked (its
        completion, once done): for the task report."""
        return self.rows(
            "SELECT d.queue, t.queue AS created_queue, t.created_at, d.queue_since, d.escalations, d.outcome, "
            "d.updated_at "
            "FROM {t_agent_tasks} t JOIN {t_desk_tasks} d ON d.task_id = t.task_id"
        )

    def unrouted_tasks(
        self, queues: Sequence[str], parts: Partitions = ALL, limit: int = 500, held: bool = False
    ) -> list[dict[str, Any]]:
        """Open tasks of ``queues`` that no officer holds, oldest in their queue first: the new
        ones, or (``held``) those already waiting with a reason."""
        if not queues:
            return []
        owned, params = partition_filter(parts)
        marks = ", ".join("?" for _ in queues)
        waiting = "<>" if held else "="
        sql = f"{self._DESK} AND holder = '' AND held_reason {waiting} '' AND queue IN ({marks}){owned}"
        return self.rows(sql + " ORDER BY queue_since, task_id LIMIT ?", (*queues, *params, limit))

    def agent_loads(self) -> dict[str, int]:
        """Open tasks each officer holds (claimed, or routed to them and not yet claimed)."""
        rows = self.rows(
            "SELECT holder, COUNT(*) AS n FROM {t_desk_tasks} WHERE outcome = '' AND holder <> '' GROUP BY holder"
        )
        return {r["holder"]: int(r["n"]) for r in rows}

    def overdue_tasks(
        self, slas: dict[str, Any], now: datetime, parts: Partitions = ALL, limit: int = 500
    ) -> list[dict[str, Any]]:
        """Open tasks not yet escalated in their queue whose service level (``slas``: queue →
        timedelta) has run out by ``now``."""
        if not slas:
            return []
        cases = " OR ".join("(queue = ? AND queue_since <= ?)" for _ in slas)
        params: list[Any] = []
        for queue, sla in sorted(slas.items()):
            params += [queue, ts(now - sla)]
        owned, owned_params = partition_filter(parts)
        sql = f"{self._DESK} AND escalated_at = '' AND ({cases}){owned}"
        return self.rows(sql + " ORDER BY queue_since, task_id LIMIT ?", (*params, *owned_params, limit))

    def next_task_deadline(self, slas: dict[str, Any], parts: Partitions = ALL) -> datetime | None:
        """When the next open task runs out of its queue's service level."""
        return self._deadline(slas, parts, None)

    def last_task_deadline(self, slas: dict[str, Any], until: datetime, parts: Partitions = ALL) -> datetime | None:
        """The last moment no later than ``until`` when an open task runs out of its service level."""
        return self._deadline(slas, parts, until)

    def _deadline(self, slas: dict[str, Any], parts: Partitions, until: datetime | None) -> datetime | None:
        owned, params = partition_filter(parts)
        sql = "SELECT queue_since FROM {t_desk_tasks} WHERE outcome = '' AND escalated_at = '' AND queue = ?"
        deadlines = []
        for queue, sla in sorted(slas.items()):  # one indexed look per queue
            if until is None:  # its oldest task
                rows = self.rows(f"{sql}{owned} ORDER BY queue_since LIMIT 1", (queue, *params))
            else:  # its newest task due by then
                limit = (queue, ts(until - sla), *params)
                rows = self.rows(f"{sql} AND queue_since <= ?{owned} ORDER BY queue_since DESC LIMIT 1", limit)
            deadlines += [parse_ts(r["queue_since"]) + sla for r in rows]
        return (min if until is None else max)(deadlines, default=None)
