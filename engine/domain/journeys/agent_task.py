"""A call or visit task a journey gave the loan officers, as they work it: routed to an officer
by the desk (or held with the reason nobody could take it), claimed, handed on, escalated when
overdue, completed with an outcome. Opened on the first action (the journey's ``TaskCreated`` is the task
itself); its id is the task's id."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from engine.domain.shared.errors import TaskNotYoursError, TaskStateError
from engine.domain.shared.folding import apply_decision, decision_of, told_decision
from engine.domain.shared.topics import keep_topics

#: How a task can end; ``opted_out`` also withdraws the lead's marketing consent on every channel.
OUTCOMES = ("reached", "no_answer", "callback_requested", "applied", "not_interested", "wrong_number", "opted_out")
#: How a task ends when its lead is erased.
ERASED_OUTCOME = "erased"


class AgentTask(Aggregate):
    """One task's working history."""

    class Opened(Aggregate.Created):
        """v2 records the desk's first word on the task when it opens it (``first``: the fields
        of the ``Routed`` or ``RoutingHeld`` it was, and its ``event`` name; ``told`` gives it
        back as that event), where it was ``Opened`` and then the other."""

        class_version = 2
        task_id: UUID
        lead_id: UUID
        queue: str
        at: datetime
        first: dict[str, Any] | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["first"] = None

    class Claimed(Aggregate.Event):
        agent: str
        at: datetime

    class Reassigned(Aggregate.Event):
        queue: str
        agent: str
        by: str
        at: datetime

    class Completed(Aggregate.Event):
        outcome: str
        note: str
        by: str
        at: datetime

    class Routed(Aggregate.Event):
        """The desk gave the task to an officer of its queue (skills and load in ``reason``)."""

        agent: str
        reason: str
        at: datetime

    class RoutingHeld(Aggregate.Event):
        """No officer of the queue could take the task; it waits in the queue."""

        reason: str
        at: datetime

    class Escalated(Aggregate.Event):
        """Not done by its queue's service level: moved to ``to_queue`` (or flagged in place)."""

        from_queue: str
        to_queue: str
        deadline: datetime
        at: datetime

    @event(Opened)
    def __init__(
        self, task_id: UUID, lead_id: UUID, queue: str, at: datetime, first: dict[str, Any] | None = None
    ) -> None:
        self.lead_id = lead_id
        self.queue = queue
        self.agent = ""
        self.outcome = ""
        #: The officer the desk routed the task to (they hold it until they claim it).
        self.assigned = ""
        self.held_reason = ""
        self.escalations = 0
        #: Whether the task is overdue in the queue it is in now (escalated there already).
        self.overdue = False
        apply_decision(self, first, _FIRST)

    @staticmethod
    def create_id(task_id: UUID, **_: Any) -> UUID:
        return task_id

    @property
    def done(self) -> bool:
        return bool(self.outcome)

    @property
    def holder(self) -> str:
        """Who holds the task: the agent who claimed it, else the officer the desk routed it to."""
        return self.agent or self.assigned

    def check_may_act(self, agent: str, supervisor: bool = False) -> None:
        """One rule for claiming, completing and reassigning: a task someone holds is theirs (or
        a team lead's, or an admin's); a task nobody holds, anyone of the desk may take."""
        if self.done:
            raise TaskStateError(f"task {self.id} is already done ({self.outcome})")
        if self.holder and self.holder != agent and not supervisor:
            how = "claimed by" if self.agent else "routed to"
            raise TaskNotYoursError(
                f"task {self.id} is {how} {self.holder}: only they or a team lead may act on it (reassign it first)"
            )

    def claim(self, agent: str, at: datetime, supervisor: bool = False) -> None:
        """Take the task (a task another agent holds: only a team lead takes it over)."""
        self.check_may_act(agent, supervisor)
        if self.agent != agent:
            self._claimed(agent=agent, at=at)

    @event(Claimed)
    def _claimed(self, agent: str, at: datetime) -> None:
        self.agent = agent

    def reassign(self, queue: str, agent: str, by: str, at: datetime, supervisor: bool = False) -> None:
        """Hand the task to another queue or agent (or back to the queue, with no agent)."""
        self.check_may_act(by, supervisor)
        self._reassigned(queue=queue or self.queue, agent=agent, by=by, at=at)

    @event(Reassigned)
    def _reassigned(self, queue: str, agent: str, by: str, at: datetime) -> None:
        self.queue, self.agent, self.assigned, self.held_reason, self.overdue = queue, agent, "", "", False

    def route(self, agent: str, reason: str, at: datetime) -> bool:
        """Give the task to ``agent`` (the desk's choice); only a task nobody holds is routed."""
        if self.done or self.agent or self.assigned:
            return False
        self._routed(agent=agent, reason=reason, at=at)
        return True

    @event(Routed)
    def _routed(self, agent: str, reason: str, at: datetime) -> None:
        self.assigned, self.held_reason = agent, ""

    def with_first_decision(self) -> AgentTask:
        """This task, opened in this pass and then routed or held at once, as one ``Opened``
        recording that (``Opened.first``): one event where there were two. Itself when it is
        anything else. The caller stores the one returned."""
        pending = list(self.pending_events)
        if (
            self.version != 2
            or len(pending) != 2
            or not isinstance(pending[1], AgentTask.Routed | AgentTask.RoutingHeld)
        ):
            return self
        opened: Any = pending[0]
        self.collect_events()
        return AgentTask(
            task_id=self.id, lead_id=opened.lead_id, queue=opened.queue, at=opened.at, first=decision_of(pending[1])
        )

    def hold(self, reason: str, at: datetime) -> bool:
        """Record why nobody could take the task (once per distinct reason)."""
        if self.done or self.agent or self.assigned or reason == self.held_reason:
            return False
        self._routing_held(reason=reason, at=at)
        return True

    @event(RoutingHeld)
    def _routing_held(self, reason: str, at: datetime) -> None:
        self.held_reason = reason

    def escalate(self, in_queue: str, to_queue: str, deadline: datetime, at: datetime) -> bool:
        """Move a task overdue in ``in_queue`` to ``to_queue``, once: a task done, moved on or
        already escalated there is left alone, and so is one whose queue escalates nowhere (it is
        overdue by the clock; stores from before kept an ``Escalated`` to the same queue)."""
        if self.done or self.overdue or self.queue != in_queue or not to_queue or to_queue == in_queue:
            return False
        self._escalated(from_queue=self.queue, to_queue=to_queue or self.queue, deadline=deadline, at=at)
        return True

    @event(Escalated)
    def _escalated(self, from_queue: str, to_queue: str, deadline: datetime, at: datetime) -> None:
        if to_queue != from_queue:  # a new queue routes and times it afresh
            self.queue, self.agent, self.assigned, self.held_reason = to_queue, "", "", ""
        else:
            self.overdue = True
        self.escalations += 1

    def complete(self, outcome: str, note: str, by: str, at: datetime, supervisor: bool = False) -> None:
        if outcome not in OUTCOMES:
            raise TaskStateError(f"unknown outcome {outcome!r}: use one of {', '.join(OUTCOMES)}")
        self.check_may_act(by, supervisor)
        self._completed(outcome=outcome, note=note, by=by, at=at)

    def close_for_erasure(self, by: str, at: datetime) -> None:
        """The lead was erased: nobody is to call the person, so the task ends (not an agent's
        outcome, hence not among ``OUTCOMES``)."""
        if not self.done:
            self._completed(outcome=ERASED_OUTCOME, note="the person asked to be erased", by=by, at=at)

    @event(Completed)
    def _completed(self, outcome: str, note: str, by: str, at: datetime) -> None:
        self.outcome = outcome
        self.agent = self.agent or by


def told(e: Any) -> list[Any]:
    """A task's stored event as the events it tells: an ``Opened`` with the desk's first word
    is the opening and that ``Routed`` or ``RoutingHeld`` (rebuilt for readers: the journey
    index, the bus); any other event is itself."""
    return told_decision(e, _FIRST) if isinstance(e, AgentTask.Opened) else [e]


#: The desk's first words a task's opening can record with it.
_FIRST: dict[str, type[Any]] = {"Routed": AgentTask.Routed, "RoutingHeld": AgentTask.RoutingHeld}

keep_topics("engine.domain.journeys.agent_task", AgentTask)
