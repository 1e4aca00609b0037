"""JourneyIndex: the due-timer schedule, enrolments by lead and by step, agent tasks and
journey outcomes (goals, exits, split arms) — a view of the Journeys log."""

from __future__ import annotations

from datetime import datetime
from functools import singledispatchmethod
from typing import Any, ClassVar

from eventsourcing.utils import get_topic

from engine.application.partitions import bucket_of
from engine.domain.journeys.agent_task import AgentTask
from engine.domain.journeys.agent_task import told as told_task
from engine.domain.journeys.enrolment import Enrolment
from engine.domain.journeys.lead_journeys import EntryRefusals, LeadJourneys, refusals_in
from projections.base import ViewProjection, sqlite_and_postgres
from projections.journey_index_queries import TS_FORMAT, JourneyIndexQueries, parse_ts, ts

__all__ = [
    "TOPICS",
    "TS_FORMAT",
    "JourneyIndex",
    "JourneyIndexPostgres",
    "JourneyIndexProjection",
    "JourneyIndexSQLite",
    "parse_ts",
    "ts",
]

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
        Enrolment.BranchTaken,
        Enrolment.LeadUpdateRequested,
        LeadJourneys.Refused,
        LeadJourneys.EntriesRefused,
        EntryRefusals.Recorded,
        AgentTask.Claimed,
        AgentTask.Reassigned,
        AgentTask.Completed,
        AgentTask.Opened,  # for the desk's first word recorded with it (see ``told``)
        AgentTask.Routed,
        AgentTask.RoutingHeld,
        AgentTask.Escalated,
    )
]


class JourneyIndex(JourneyIndexQueries):
    """Due timers (indexed by due time), enrolments, agent tasks and outcome counts."""

    tables = ("due_timers", "lead_enrolments", "agent_tasks", "desk_tasks", "journey_outcomes", "desk_changes")
    #: One counter, moved by every event the task desk reads (a task opened, routed, held,
    #: claimed, handed on, escalated or closed): the desk passes only when it moved.
    #: And the reach of each step, summed per batch (a reach names the enrolment's journey as
    #: the update that records it returns it).
    counters: ClassVar[dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
        "desk_changes": (("id",), ("n",)),
        "journey_outcomes": (("journey_id", "journey_version", "kind", "label"), ("n",)),
    }
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
            # How each task is being worked, in one row the desk reads without joins: its queue and
            # since when, whom it was routed to or why nobody could take it, who holds it (the
            # officer who claimed it, else the one it was routed to), escalation, outcome.
            "CREATE TABLE IF NOT EXISTS {t_desk_tasks} (task_id TEXT PRIMARY KEY, lead_id TEXT NOT NULL, "
            "bucket INTEGER NOT NULL, queue TEXT NOT NULL, queue_since TEXT NOT NULL, agent TEXT NOT NULL, "
            "routed_to TEXT NOT NULL, holder TEXT NOT NULL, held_reason TEXT NOT NULL, escalated_at TEXT NOT NULL, "
            "escalations INTEGER NOT NULL, outcome TEXT NOT NULL, note TEXT NOT NULL, updated_at TEXT NOT NULL)",
            # Partial indexes, one per question the desk asks on every pass: new tasks to route,
            # waiting ones, officers' loads, and the next task to run out of its service level.
            "CREATE INDEX IF NOT EXISTS desk_tasks_new ON {t_desk_tasks} (queue_since, task_id) "
            "WHERE outcome = '' AND holder = '' AND held_reason = ''",
            "CREATE INDEX IF NOT EXISTS desk_tasks_waiting ON {t_desk_tasks} (queue_since, task_id) "
            "WHERE outcome = '' AND holder = '' AND held_reason <> ''",
            "CREATE INDEX IF NOT EXISTS desk_tasks_held ON {t_desk_tasks} (holder) WHERE outcome = '' AND holder <> ''",
            "CREATE INDEX IF NOT EXISTS desk_tasks_sla ON {t_desk_tasks} (queue, queue_since) "
            "WHERE outcome = '' AND escalated_at = ''",
            "CREATE TABLE IF NOT EXISTS {t_journey_outcomes} (journey_id TEXT NOT NULL, journey_version INTEGER "
            "NOT NULL, kind TEXT NOT NULL, label TEXT NOT NULL, n BIGINT NOT NULL, "
            "PRIMARY KEY (journey_id, journey_version, kind, label))",
            "CREATE TABLE IF NOT EXISTS {t_desk_changes} (id INTEGER PRIMARY KEY, n BIGINT NOT NULL)",
        ]

    def create_table(self) -> None:
        super().create_table()
        self._fold_old_task_tables()

    def _fold_old_task_tables(self) -> None:
        """Stores from before ``desk_tasks`` kept a task's work in ``task_states`` (written once
        someone acted on it) and ``task_desk`` (routing; absent for tasks from before the desk):
        fold both into ``desk_tasks`` and drop them, in one transaction."""
        with self.transaction() as c:
            if self.is_postgres:
                schema = self.datastore.schema  # type: ignore[attr-defined]
                c.execute(
                    "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = %s "
                    "AND table_name IN ('task_states', 'task_desk')",
                    (schema,),
                )
            else:
                c.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('task_states', 'task_desk')"
                )
            old = {dict(r)["name"] for r in c.fetchall()}
            if not old:
                return
            names = {t: (f'"{schema}"."{t}"' if self.is_postgres else t) for t in ("task_states", "task_desk")}
            states = names["task_states"] if "task_states" in old else None
            desk = names["task_desk"] if "task_desk" in old else None

            def s(col: str, default: str) -> str:
                return f"COALESCE(s.{col}, {default})" if states else default

            def d(col: str, default: str) -> str:
                return f"COALESCE(d.{col}, {default})" if desk else default

            empty = "''"
            agent, routed = s("agent", empty), d("routed_to", empty)
            bucket = "(SELECT MIN(e.bucket) FROM {t_lead_enrolments} e WHERE e.lead_id = t.lead_id)"
            columns = [
                "t.task_id",
                "t.lead_id",
                f"COALESCE({d('bucket', 'NULL')}, {bucket}, 0)",
                s("queue", "t.queue"),
                d("queue_since", "t.created_at"),
                agent,
                routed,
                f"CASE WHEN {agent} <> '' THEN {agent} ELSE {routed} END",
                d("held_reason", empty),
                d("escalated_at", empty),
                d("escalations", "0"),
                s("outcome", empty),
                s("note", empty),
                s("updated_at", "t.created_at"),
            ]
            joins = (f" LEFT JOIN {states} s ON s.task_id = t.task_id" if states else "") + (
                f" LEFT JOIN {desk} d ON d.task_id = t.task_id" if desk else ""
            )
            c.execute(
                self.q(
                    f"INSERT INTO {{t_desk_tasks}} SELECT {', '.join(columns)} FROM {{t_agent_tasks}} t{joins} "  # noqa: S608
                    "ON CONFLICT (task_id) DO NOTHING"
                )
            )
            for name in sorted(old):
                c.execute(f"DROP TABLE {names[name]}")

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
        self._wait_over(c, e)

    def _wait_over(self, c: Any, e: Any) -> None:
        """Arriving at another step ends a wait still open (a wait that ended as planned has no
        ``WaitEnded`` of its own): its timer goes with it."""
        c.execute(
            self.q("DELETE FROM {t_due_timers} WHERE enrolment_id = ? AND step <> ?"), (str(e.originator_id), e.step)
        )

    def _arrived(self, c: Any, e: Any) -> None:
        """A step's own event where the enrolment was at another step records reaching it (as
        ``Enrolment._arrive``; before the lean log a ``StepReached`` came first and put it there)."""
        c.execute(
            self.q(
                "UPDATE {t_lead_enrolments} SET current_step = ? WHERE enrolment_id = ? "
                "AND (current_step IS NULL OR current_step <> ?) RETURNING journey_id, journey_version, "
                "(SELECT step FROM {t_due_timers} t WHERE t.enrolment_id = {t_lead_enrolments}.enrolment_id) "
                "AS timer_step"
            ),
            (e.step, str(e.originator_id), e.step),
        )
        row = c.fetchone()
        if row is not None:
            journey = dict(row)
            self.count(
                c, "journey_outcomes", (journey["journey_id"], int(journey["journey_version"]), "reached", e.step), (1,)
            )
            if journey["timer_step"] not in (None, e.step):  # a wait still open elsewhere: over
                self._wait_over(c, e)

    @apply.register
    def _(self, e: Enrolment.BranchTaken, c: Any) -> None:
        self._arrived(c, e)

    @apply.register
    def _(self, e: Enrolment.LeadUpdateRequested, c: Any) -> None:
        self._arrived(c, e)

    @apply.register(LeadJourneys.Refused)
    @apply.register(LeadJourneys.EntriesRefused)
    @apply.register(EntryRefusals.Recorded)
    def _(self, e: Any, c: Any) -> None:
        c.executemany(
            self.q(
                "INSERT INTO {t_journey_outcomes} VALUES (?, ?, 'refused', ?, 1) "
                "ON CONFLICT (journey_id, journey_version, kind, label) DO UPDATE SET n = {t_journey_outcomes}.n + 1"
            ),
            [(r.journey_id, r.version, r.reason) for r in refusals_in(e)],
        )

    @apply.register
    def _(self, e: Enrolment.WaitStarted, c: Any) -> None:
        self._arrived(c, e)
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
        if e.step is not None:
            self._arrived(c, e)
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
        self._arrived(c, e)
        self._outcome(c, e.originator_id, "split", f"{e.step}: {e.arm}")

    @apply.register
    def _(self, e: Enrolment.MessageRequested, c: Any) -> None:
        self._arrived(c, e)
        self._outcome(c, e.originator_id, "message", f"{e.channel} {e.template}")

    @apply.register
    def _(self, e: Enrolment.MessageSkipped, c: Any) -> None:
        self._arrived(c, e)
        self._outcome(c, e.originator_id, "message skipped", e.step)

    @apply.register
    def _(self, e: Enrolment.TaskCreated, c: Any) -> None:
        self.count(c, "desk_changes", (1,), (1,))
        self._arrived(c, e)
        c.execute(
            self.q(
                "INSERT INTO {t_agent_tasks} SELECT ?, lead_id, journey_id, ?, ?, ?, ?, ?, ? "
                "FROM {t_lead_enrolments} WHERE enrolment_id = ? ON CONFLICT (task_id) DO NOTHING"
            ),
            (str(e.task_id), e.step, e.kind, e.queue, e.note, ts(e.due_at), ts(e.at), str(e.originator_id)),
        )
        c.execute(
            self.q(
                "INSERT INTO {t_desk_tasks} SELECT ?, lead_id, bucket, ?, ?, '', '', '', '', '', 0, '', '', ? "
                "FROM {t_lead_enrolments} WHERE enrolment_id = ? ON CONFLICT (task_id) DO NOTHING"
            ),
            (str(e.task_id), e.queue, ts(e.at), ts(e.at), str(e.originator_id)),
        )
        self._outcome(c, e.originator_id, "task", f"{e.kind} {e.queue}")

    @apply.register
    def _(self, e: AgentTask.Claimed, c: Any) -> None:
        self.count(c, "desk_changes", (1,), (1,))
        c.execute(
            self.q("UPDATE {t_desk_tasks} SET agent = ?, holder = ?, updated_at = ? WHERE task_id = ?"),
            (e.agent, e.agent, ts(e.at), str(e.originator_id)),
        )

    @apply.register
    def _(self, e: AgentTask.Reassigned, c: Any) -> None:
        self.count(c, "desk_changes", (1,), (1,))
        c.execute(
            self.q("UPDATE {t_desk_tasks} SET queue = ?, agent = ?, updated_at = ? WHERE task_id = ?"),
            (e.queue, e.agent, ts(e.at), str(e.originator_id)),
        )
        self._new_stint(c, e.originator_id, e.at)

    @apply.register
    def _(self, e: AgentTask.Completed, c: Any) -> None:
        self.count(c, "desk_changes", (1,), (1,))
        c.execute(
            self.q(
                "UPDATE {t_desk_tasks} SET outcome = ?, note = ?, agent = CASE WHEN agent = '' THEN ? ELSE agent END, "
                "updated_at = ? WHERE task_id = ?"
            ),
            (e.outcome, e.note, e.by, ts(e.at), str(e.originator_id)),
        )

    @apply.register
    def _(self, e: AgentTask.Opened, c: Any) -> None:
        for decided in told_task(e)[1:]:
            self.apply_one(decided, c)

    @apply.register
    def _(self, e: AgentTask.Routed, c: Any) -> None:
        self.count(c, "desk_changes", (1,), (1,))
        c.execute(
            self.q(
                "UPDATE {t_desk_tasks} SET routed_to = ?, held_reason = '', "
                "holder = CASE WHEN agent = '' THEN ? ELSE agent END WHERE task_id = ?"
            ),
            (e.agent, e.agent, str(e.originator_id)),
        )

    @apply.register
    def _(self, e: AgentTask.RoutingHeld, c: Any) -> None:
        self.count(c, "desk_changes", (1,), (1,))
        c.execute(
            self.q("UPDATE {t_desk_tasks} SET held_reason = ? WHERE task_id = ?"), (e.reason, str(e.originator_id))
        )

    @apply.register
    def _(self, e: AgentTask.Escalated, c: Any) -> None:
        self.count(c, "desk_changes", (1,), (1,))
        task = str(e.originator_id)
        c.execute(self.q("UPDATE {t_desk_tasks} SET escalations = escalations + 1 WHERE task_id = ?"), (task,))
        if e.to_queue == e.from_queue:  # flagged where it is
            c.execute(self.q("UPDATE {t_desk_tasks} SET escalated_at = ? WHERE task_id = ?"), (ts(e.at), task))
            return
        c.execute(
            self.q("UPDATE {t_desk_tasks} SET queue = ?, agent = '', updated_at = ? WHERE task_id = ?"),
            (e.to_queue, ts(e.at), task),
        )
        self._new_stint(c, e.originator_id, e.at)

    def desk_changes(self) -> int:
        """How often what the task desk reads has changed (grows only; 0 when never)."""
        rows = self.rows("SELECT COALESCE(MAX(n), 0) AS n FROM {t_desk_changes}")
        return int(rows[0]["n"]) if rows else 0

    def _new_stint(self, c: Any, task_id: Any, at: datetime) -> None:
        """The task arrived in a queue (handed on or escalated): routed and timed afresh; it is
        held only by the officer it was handed to, if any."""
        c.execute(
            self.q(
                "UPDATE {t_desk_tasks} SET queue_since = ?, routed_to = '', held_reason = '', escalated_at = '', "
                "holder = agent WHERE task_id = ?"
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


class JourneyIndexProjection(ViewProjection):
    """The eventsourcing Projection over Journeys (for a ProjectionRunner process)."""

    name = "journey_index"
    topics = tuple(TOPICS)


JourneyIndexSQLite, JourneyIndexPostgres = sqlite_and_postgres(JourneyIndex)
