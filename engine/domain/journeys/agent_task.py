"""A call or visit task a journey gave the loan officers, as they work it: claimed, handed on,
completed with an outcome. Opened on the first action (the journey's ``TaskCreated`` is the task
itself); its id is the task's id."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from engine.domain.shared.errors import TaskStateError
from engine.domain.shared.topics import keep_topics

#: How a task can end; ``opted_out`` also withdraws the lead's marketing consent on every channel.
OUTCOMES = ("reached", "no_answer", "callback_requested", "applied", "not_interested", "wrong_number", "opted_out")


class AgentTask(Aggregate):
    """One task's working history."""

    class Opened(Aggregate.Created):
        task_id: UUID
        lead_id: UUID
        queue: str
        at: datetime

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

    @event(Opened)
    def __init__(self, task_id: UUID, lead_id: UUID, queue: str, at: datetime) -> None:
        self.lead_id = lead_id
        self.queue = queue
        self.agent = ""
        self.outcome = ""

    @staticmethod
    def create_id(task_id: UUID, **_: Any) -> UUID:
        return task_id

    @property
    def done(self) -> bool:
        return bool(self.outcome)

    def claim(self, agent: str, at: datetime) -> None:
        """Take the task; a task another agent holds must be reassigned first."""
        if self.done:
            raise TaskStateError(f"task {self.id} is already done ({self.outcome})")
        if self.agent and self.agent != agent:
            raise TaskStateError(f"task {self.id} is claimed by {self.agent}; reassign it first")
        if self.agent != agent:
            self._claimed(agent=agent, at=at)

    @event(Claimed)
    def _claimed(self, agent: str, at: datetime) -> None:
        self.agent = agent

    def reassign(self, queue: str, agent: str, by: str, at: datetime) -> None:
        """Hand the task to another queue or agent (or back to the queue, with no agent)."""
        if self.done:
            raise TaskStateError(f"task {self.id} is already done ({self.outcome})")
        self._reassigned(queue=queue or self.queue, agent=agent, by=by, at=at)

    @event(Reassigned)
    def _reassigned(self, queue: str, agent: str, by: str, at: datetime) -> None:
        self.queue, self.agent = queue, agent

    def complete(self, outcome: str, note: str, by: str, at: datetime) -> None:
        if outcome not in OUTCOMES:
            raise TaskStateError(f"unknown outcome {outcome!r}: use one of {', '.join(OUTCOMES)}")
        if self.done:
            raise TaskStateError(f"task {self.id} is already done ({self.outcome})")
        self._completed(outcome=outcome, note=note, by=by, at=at)

    @event(Completed)
    def _completed(self, outcome: str, note: str, by: str, at: datetime) -> None:
        self.outcome = outcome
        self.agent = self.agent or by


keep_topics("engine.domain.journeys.agent_task", AgentTask)
