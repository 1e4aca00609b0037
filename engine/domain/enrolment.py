"""The Enrolment aggregate: one lead travelling through one published journey version."""

from __future__ import annotations

from datetime import datetime
from typing import Any, assert_never
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from engine.domain.interpreter import Branch, Decision, EndWait, Exit, Reach, Send, Wait
from engine.domain.values import derive_id


def enrolment_id_for(lead_id: UUID, journey_id: str, version: int, entry_key: str = "") -> UUID:
    """Deterministic enrolment id (DESIGN.md decision 3)."""
    return derive_id("enrolment", lead_id, journey_id, version, entry_key)


def send_id_for(enrolment_id: UUID, step: str, attempt: int) -> UUID:
    """Deterministic send id: the e-mail Message-ID and the SMS idempotency key."""
    return derive_id("send", enrolment_id, step, attempt)


class Enrolment(Aggregate):
    """Records every step, wait, branch, message request and the exit, each with its reason."""

    class Started(Aggregate.Created):
        lead_id: UUID
        journey_id: str
        journey_version: int
        entry_key: str
        reason: str
        at: datetime

    class StepReached(Aggregate.Event):
        step: str
        at: datetime

    class MessageRequested(Aggregate.Event):
        step: str
        send_id: UUID
        channel: str
        template: str
        reason: str
        at: datetime

    class WaitStarted(Aggregate.Event):
        step: str
        due_at: datetime
        at: datetime

    class WaitEnded(Aggregate.Event):
        step: str
        at: datetime

    class BranchTaken(Aggregate.Event):
        step: str
        to: str
        case: str
        values: dict[str, Any]
        at: datetime

    class Exited(Aggregate.Event):
        reason: str
        detail: str
        at: datetime

    @event(Started)
    def __init__(
        self,
        lead_id: UUID,
        journey_id: str,
        journey_version: int,
        entry_key: str,
        reason: str,
        at: datetime,
    ) -> None:
        self.lead_id = lead_id
        self.journey_id = journey_id
        self.journey_version = journey_version
        self.entry_key = entry_key
        self.started_at = at
        self.current_step: str | None = None
        self.waiting_step: str | None = None
        self.due_at: datetime | None = None
        self.exit_reason: str | None = None
        self.visits: dict[str, int] = {}
        self.last_decision = reason

    @staticmethod
    def create_id(lead_id: UUID, journey_id: str, journey_version: int, entry_key: str, **_: Any) -> UUID:
        return enrolment_id_for(lead_id, journey_id, journey_version, entry_key)

    @property
    def is_active(self) -> bool:
        return self.exit_reason is None

    def apply(self, decisions: list[Decision], at: datetime) -> None:
        """Record the interpreter's decisions as events, in order."""
        for d in decisions:
            if not self.is_active:
                return
            match d:
                case Reach():
                    self._step_reached(step=d.step, at=at)
                case Send():
                    attempt = self.visits.get(d.step, 1)
                    self._message_requested(
                        step=d.step,
                        send_id=send_id_for(self.id, d.step, attempt),
                        channel=d.channel,
                        template=d.template,
                        reason=f"journey '{self.journey_id}' v{self.journey_version} step "
                        f"'{d.step}' ({self.last_decision})",
                        at=at,
                    )
                case Wait():
                    self._wait_started(step=d.step, due_at=d.due_at, at=at)
                case EndWait():
                    self.check_waiting_at(d.step)
                    self._wait_ended(step=d.step, at=at)
                case Branch():
                    self._branch_taken(step=d.step, to=d.to, case=d.case, values=d.values, at=at)
                case Exit():
                    self._exited(reason=d.reason, detail=d.detail, at=at)
                case _:
                    assert_never(d)

    def check_waiting_at(self, step: str) -> None:
        """Raise unless the enrolment is waiting at ``step`` (a timer that fired twice)."""
        if self.waiting_step != step:
            raise ValueError(f"enrolment {self.id} is not waiting at {step!r}")

    def is_due(self, now: datetime) -> bool:
        return self.is_active and self.due_at is not None and self.due_at <= now

    @event(StepReached)
    def _step_reached(self, step: str, at: datetime) -> None:
        self.current_step = step
        self.visits[step] = self.visits.get(step, 0) + 1

    @event(MessageRequested)
    def _message_requested(
        self, step: str, send_id: UUID, channel: str, template: str, reason: str, at: datetime
    ) -> None:
        self.last_decision = f"after step '{step}'"

    @event(WaitStarted)
    def _wait_started(self, step: str, due_at: datetime, at: datetime) -> None:
        self.waiting_step = step
        self.due_at = due_at

    @event(WaitEnded)
    def _wait_ended(self, step: str, at: datetime) -> None:
        self.waiting_step = None
        self.due_at = None
        self.last_decision = f"after waiting at '{step}'"

    @event(BranchTaken)
    def _branch_taken(self, step: str, to: str, case: str, values: dict[str, Any], at: datetime) -> None:
        shown = ", ".join(f"{k}={v}" for k, v in values.items())
        self.last_decision = f"branch '{step}' took '{case}' because {shown}"

    @event(Exited)
    def _exited(self, reason: str, detail: str, at: datetime) -> None:
        self.exit_reason = reason
        self.waiting_step = None
        self.due_at = None
