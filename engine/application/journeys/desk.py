"""The desk at work: route each new task to an officer of its queue who may take the lead and has
room, and escalate the tasks that outlive their queue's service level. Runs in the engine's loop
for the partitions this process owns, so two workers never route the same task."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from engine.application.partitions import Partitions
from engine.application.ports import JourneyIndexView
from engine.domain.journeys.agent_task import AgentTask
from engine.domain.journeys.desk import Desk
from engine.domain.leads.lead import Lead
from engine.eventstore.saving import current_aggregates, retry_conflicts, save_batch

P = TypeVar("P", bound=tuple[Any, ...])

#: The officers a held task's reason names as full (``Desk.route`` writes "X is at capacity
#: (n of c open)").
AT_CAPACITY = re.compile(r"(\S+) is at capacity")
_FULL = re.compile(r"(\S+) is at capacity \((\d+) of (\d+) open\)")

#: Leads read together while routing: of the next this many tasks, those that may move (a pass
#: moves a held task only into a free slot: after the first few, the officers are full again).
LEADS_READ = 64


def _next_reads(rows: list[dict[str, Any]], loads: dict[str, int], capacity: dict[str, int]) -> list[UUID]:
    """The leads to read together, from the next ``LEADS_READ`` rows (the first is routed now):
    each new task's, and each held one's that may still move once the held ones before it took
    the free slots they wait for. Only a read ahead: a lead left out is read when its task's turn
    comes and it may move then."""
    after = dict(loads)
    out: list[UUID] = []
    for n, row in enumerate(rows[:LEADS_READ]):
        reason = row["held_reason"]
        if reason:
            room = [o for o, *_ in _FULL.findall(reason) if after.get(o, 0) < capacity.get(o, 0)]
            if room:
                after[room[0]] = after.get(room[0], 0) + 1
            elif n and not _worded_anew(reason, after, capacity):
                continue
        out.append(UUID(str(row["lead_id"])))
    return out


def _may_move(reason: str, loads: dict[str, int], capacity: dict[str, int]) -> bool:
    """Whether routing a task held for ``reason`` again could give anything else: an officer it
    names as full has room now, or routing would word the reason anew. Officers' skills do not
    change between passes, so one it names as unable stays so."""
    return any(loads.get(o, 0) < capacity.get(o, 0) for o, *_ in _FULL.findall(reason)) or _worded_anew(
        reason, loads, capacity
    )


def _worded_anew(reason: str, loads: dict[str, int], capacity: dict[str, int]) -> bool:
    """Whether an officer ``reason`` names as full has another load or capacity now (or the
    reason does not say them: worded by an older version)."""
    full = _FULL.findall(reason)
    return len(full) != len(AT_CAPACITY.findall(reason)) or any(
        (loads.get(o, 0), capacity.get(o, 0)) != (int(n), int(c)) for o, n, c in full
    )


def routing_facts(lead: Lead | None) -> dict[str, Any]:
    """What routing reads about a lead: licence region, loan type, language."""
    if lead is None:
        return {}
    return {
        "region": lead.profile.get("region"),
        "loan_type": lead.interest.get("loan_type"),
        "language": lead.contact.get("language"),
    }


@dataclass
class TaskDesk:
    """Routes and escalates the tasks of the partitions a process owns (see ``work``)."""

    desk: Desk
    journeys: Any
    index: JourneyIndexView
    leads_of: Callable[[list[UUID]], dict[UUID, Lead]]
    #: The officers' loads after the last pass: tasks already waiting are planned again only
    #: when someone's load went down since (the reasons they wait for cannot have changed).
    _loads: dict[str, int] | None = field(default=None, repr=False)
    #: How often the tasks in the index had changed (and the partitions) at the last pass, and
    #: when the next open task runs out of its service level: until one of them moves, another
    #: pass finds nothing.
    _settled: tuple[Any, ...] | None = field(default=None, repr=False)
    _next_deadline: datetime | None = field(default=None, repr=False)

    def work(self, parts: Partitions, now: datetime) -> int:
        """Route and escalate what is due at ``now``; the number of task events written. A pass
        is skipped when no task changed in the index since the last one (none opened, routed,
        claimed, escalated or closed) and no task's service level has run out: routing reads
        only the tasks, the officers' loads and the leads of the tasks it routes, escalation
        only the tasks and the clock."""
        if not self.desk.queues:
            return 0
        stands = (self.index.desk_changes(), parts.owned)
        if stands == self._settled and (self._next_deadline is None or now < self._next_deadline):
            return 0
        done = self._work(parts, now)
        self._settled = stands
        self._next_deadline = self.index.next_task_deadline(self.desk.escalating_slas, parts)
        return done

    def _work(self, parts: Partitions, now: datetime) -> int:
        written = _escalate(self.desk, self.journeys, self.index, parts, now)
        routed_queues = sorted({q for o in self.desk.officers for q in o.queues})
        rows = self.index.unrouted_tasks(routed_queues, parts)
        loads = self.index.agent_loads()
        freed = self._loads is None or any(loads.get(k, 0) < n for k, n in self._loads.items())
        if freed:
            # Only waiting tasks of a queue where someone has room now can move (a full queue's
            # tasks keep waiting for the reason they have): no lead is read for the others.
            with_room = {o.id for o in self.desk.officers if loads.get(o.id, 0) < o.capacity}
            open_queues = {q for o in self.desk.officers if o.id in with_room for q in o.queues}
            room = sum(o.capacity - loads.get(o.id, 0) for o in self.desk.officers if o.id in with_room)
            # Each free slot takes one task: the oldest few waiting are enough to fill them.
            held = (
                self.index.unrouted_tasks(sorted(open_queues), parts, limit=min(500, 20 + 4 * room), held=True)
                if open_queues
                else []
            )
            # A task waits for officers who may take it but were full (its reason names them);
            # only when one of them has room can it move (skills do not change between passes).
            rows = [r for r in held if with_room & set(AT_CAPACITY.findall(r["held_reason"]))] + rows
        self._loads = dict(loads)
        if not rows:
            return written
        capacity = {o.id: o.capacity for o in self.desk.officers}
        leads: dict[UUID, Lead] = {}
        read: set[UUID] = set()
        plans: list[tuple[dict[str, Any], str, str]] = []
        for i, row in enumerate(rows):  # decided on the view; only tasks that change are read from the store
            if row["held_reason"] and not _may_move(row["held_reason"], loads, capacity):
                continue  # its officers filled up again in this pass: routed again, it is held as it is
            lead_id = UUID(str(row["lead_id"]))
            if lead_id not in read:
                ids = _next_reads(rows[i:], loads, capacity)
                read.update(ids)
                leads.update(self.leads_of(ids))
            facts = routing_facts(leads.get(lead_id))
            officer, reason = self.desk.route(row["queue"], facts, loads)
            if officer is not None:
                loads[officer.id] = loads.get(officer.id, 0) + 1
                plans.append((row, officer.id, reason))
            elif reason != row["held_reason"]:
                plans.append((row, "", reason))

        def decide(task: AgentTask, plan: tuple[dict[str, Any], str, str]) -> bool:
            _, officer_id, reason = plan
            return task.route(officer_id, reason, now) if officer_id else task.hold(reason, now)

        moved = _act_on(self.journeys, plans, decide, now)
        self._loads = dict(loads)
        return written + moved


def _escalate(desk: Desk, journeys: Any, index: JourneyIndexView, parts: Partitions, now: datetime) -> int:
    plans = [(row,) for row in index.overdue_tasks(desk.escalating_slas, now, parts)]

    def decide(task: AgentTask, plan: tuple[dict[str, Any]]) -> bool:
        queue = desk.queues[plan[0]["queue"]]
        return task.escalate(queue.id, queue.escalate_to, queue.deadline(queue_since(plan[0])) or now, now)

    return _act_on(journeys, plans, decide, now)


def _act_on(journeys: Any, plans: list[P], decide: Callable[[AgentTask, P], bool], now: datetime) -> int:
    """Apply ``decide`` to each plan's task (its view row first; read fresh, opened if no one acted
    on it yet) and save the changed ones in one batch; a batch another process touched meanwhile
    is redone (the aggregate refuses what no longer applies, e.g. routing a claimed task)."""
    if not plans:
        return 0

    def attempt() -> int:
        tasks = tasks_of(journeys, [plan[0] for plan in plans], now)
        changed = [task for plan, task in zip(plans, tasks, strict=True) if decide(task, plan)]
        # A task opened and routed (or held) at once is one event (AgentTask.with_first_decision).
        save_batch(journeys, [task.with_first_decision() for task in changed])
        return len(changed)

    return int(retry_conflicts(journeys, attempt))


def task_of(journeys: Any, row: dict[str, Any], now: datetime) -> AgentTask:
    """A task's working history as committed now (a loan officer's command in another process may
    have written it), opened from its view row if nobody acted on it yet."""
    return tasks_of(journeys, [row], now)[0]


def tasks_of(journeys: Any, rows: list[dict[str, Any]], now: datetime) -> list[AgentTask]:
    """``task_of`` for each row, with one version query for them all: a cached task proven
    current is used as it is, the others are read from the store, and the tasks nobody acted on
    yet (no events) are opened from their rows without a read."""
    ids = [UUID(str(row["task_id"])) for row in rows]
    found = current_aggregates(journeys, ids)
    return [
        found.get(task_id) or AgentTask(task_id=task_id, lead_id=UUID(str(row["lead_id"])), queue=row["queue"], at=now)
        for task_id, row in zip(ids, rows, strict=True)
    ]


def queue_since(row: dict[str, Any]) -> datetime:
    """Since when a task (a view row) has been in its queue."""
    return datetime.fromisoformat(str(row["queue_since"]))
