"""The Enrolment aggregate: one lead travelling through one published journey version."""

from __future__ import annotations

from datetime import datetime
from typing import Any, assert_never
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from engine.domain.journeys.decisions import (
    Branch,
    Decision,
    EndWait,
    Exit,
    GoalReached,
    Observed,
    Reach,
    Send,
    SkipSend,
    Split,
    Task,
    Update,
    Wait,
)
from engine.domain.shared.topics import keep_topics
from engine.domain.shared.values import derive_id


def enrolment_id_for(lead_id: UUID, journey_id: str, entry_key: str = "", entry_number: int = 1) -> UUID:
    """Deterministic enrolment id (DESIGN.md decision 3): one per lead, journey, key and entry."""
    return derive_id("enrolment", lead_id, journey_id, entry_key, entry_number)


def send_id_for(enrolment_id: UUID, step: str, attempt: int) -> UUID:
    """Deterministic send id: the e-mail Message-ID and the SMS idempotency key."""
    return derive_id("send", enrolment_id, step, attempt)


class Enrolment(Aggregate):
    """Records every step, wait, branch, split, request and the exit, each with its reason."""

    class Started(Aggregate.Created):
        lead_id: UUID
        journey_id: str
        journey_version: int
        entry_key: str
        entry_number: int
        reason: str
        at: datetime

    class StepReached(Aggregate.Event):
        step: str
        at: datetime

    class MessageRequested(Aggregate.Event):
        """v2 names the lead and the journey version, so the dispatcher of the lead's partition
        takes the request up without reading the enrolment."""

        class_version = 2
        step: str
        send_id: UUID
        channel: str
        template: str
        reason: str
        at: datetime
        lead_id: UUID | None
        journey_id: str
        journey_version: int

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["lead_id"], state["journey_id"], state["journey_version"] = None, "", 0

    class MessageSkipped(Aggregate.Event):
        step: str
        reason: str
        at: datetime

    class WaitStarted(Aggregate.Event):
        step: str
        due_at: datetime
        kind: str
        at: datetime

    class WaitEnded(Aggregate.Event):
        step: str
        outcome: str
        at: datetime

    class BranchTaken(Aggregate.Event):
        """v2 names the lead, whose key seals ``values`` (a branch may read income)."""

        class_version = 2
        step: str
        to: str
        case: str
        values: dict[str, Any]
        at: datetime
        lead_id: UUID | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["lead_id"] = None  # v1 did not name it (its values are stored in the clear)

    class SplitAssigned(Aggregate.Event):
        step: str
        arm: str
        bucket: int
        at: datetime

    class TaskCreated(Aggregate.Event):
        step: str
        task_id: UUID
        kind: str
        queue: str
        note: str
        due_at: datetime
        at: datetime

    class LeadUpdateRequested(Aggregate.Event):
        lead_id: UUID
        step: str
        stage: str | None
        tag: str | None
        at: datetime

    class EventObserved(Aggregate.Event):
        event: str
        key: str
        at: datetime

    class GoalReached(Aggregate.Event):
        stage: str
        within_window: bool
        at: datetime

    class Migrated(Aggregate.Event):
        from_version: int
        to_version: int
        from_step: str | None
        to_step: str | None
        at: datetime

    class Exited(Aggregate.Event):
        """v2 names the exit step that ended the enrolment (None: it ended otherwise), which
        records reaching that step as well."""

        class_version = 2
        reason: str
        detail: str
        at: datetime
        step: str | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["step"] = None  # v1 recorded the exit step's reach as a StepReached before it

    @event(Started)
    def __init__(
        self,
        lead_id: UUID,
        journey_id: str,
        journey_version: int,
        entry_key: str,
        entry_number: int,
        reason: str,
        at: datetime,
    ) -> None:
        self.lead_id = lead_id
        self.journey_id = journey_id
        self.journey_version = journey_version
        self.entry_key = entry_key
        self.entry_number = entry_number
        self.started_at = at
        self.current_step: str | None = None
        self.waiting_step: str | None = None
        self.waiting_kind: str | None = None
        self.due_at: datetime | None = None
        self.exit_reason: str | None = None
        self.exited_at: datetime | None = None
        self.visits: dict[str, int] = {}
        self.observed: list[Observed] = []
        self.sent_templates: set[str] = set()
        self.last_decision = reason

    @staticmethod
    def create_id(lead_id: UUID, journey_id: str, entry_key: str, entry_number: int, **_: Any) -> UUID:
        return enrolment_id_for(lead_id, journey_id, entry_key, entry_number)

    @property
    def is_active(self) -> bool:
        return self.exit_reason is None

    def is_due(self, now: datetime) -> bool:
        return self.is_active and self.due_at is not None and self.due_at <= now

    def check_waiting_at(self, step: str) -> None:
        """Raise unless the enrolment is waiting at ``step`` (a timer that fired twice)."""
        if self.waiting_step != step:
            raise ValueError(f"enrolment {self.id} is not waiting at {step!r}")

    def apply(self, decisions: list[Decision], at: datetime) -> None:
        """Record the interpreter's decisions as events, in order. Reaching a step is recorded
        by the step's own event when it has one (a send, a wait, a branch...: each names its
        step), so a step costs one event, not two; ``StepReached`` remains for a step without
        an event of its own and for a step reached again from itself."""
        for i, d in enumerate(decisions):
            if not self.is_active:
                return
            if isinstance(d, Reach) and self._reach_told_by(d.step, decisions[i + 1 : i + 2]):
                continue
            if isinstance(d, EndWait) and self._wait_end_told_by(d, decisions[i + 1 : i + 2]):
                self.check_waiting_at(d.step)
                continue
            self._apply_one(d, at)

    @staticmethod
    def _wait_end_told_by(d: EndWait, following: list[Decision]) -> bool:
        """Whether the next decision's event records that the wait at ``d.step`` ended as
        planned (its time came): it arrives at another step, and arriving there ends the wait
        (see ``_arrive``), so ``WaitEnded`` would say it twice. Other endings (an event came, a
        timeout, a reschedule) keep their event."""
        if d.outcome != ELAPSED or not following:
            return False
        nxt = following[0]
        named = nxt.step if isinstance(nxt, (Reach, *STEP_DECISIONS)) else None
        return bool(named) and named != d.step

    def _reach_told_by(self, step: str, following: list[Decision]) -> bool:
        """Whether the next decision's event records the reach of ``step`` (see ``_arrive``)."""
        return (
            self.current_step != step
            and bool(following)
            and isinstance(following[0], STEP_DECISIONS)
            and following[0].step == step
        )

    def _decided_before(self, step: str) -> str:
        """What was decided last, as of reaching ``step``: a wait still open at another step
        ends as planned on arriving (see ``_arrive``)."""
        if self.waiting_step is not None and self.waiting_step != step:
            return _after_waiting(self.waiting_step, ELAPSED)
        return self.last_decision

    def _visit(self, step: str) -> int:
        """The visit of ``step`` a send or task belongs to (its deterministic ids depend on it)."""
        return self.visits.get(step, 1) if self.current_step == step else self.visits.get(step, 0) + 1

    def _arrive(self, step: str) -> None:
        """A step's own event arriving at a step the enrolment is not at counts as reaching it
        (stores before the lean log recorded ``StepReached`` first: then it is already there),
        and ends a wait still open at another step as planned (stores before recorded
        ``WaitEnded`` first: then none is open)."""
        if self.waiting_step is not None and self.waiting_step != step:
            self._end_wait(self.waiting_step, ELAPSED)
        if self.current_step != step:
            self.current_step = step
            self.visits[step] = self.visits.get(step, 0) + 1

    def _apply_one(self, d: Decision, at: datetime) -> None:
        match d:
            case Reach():
                self._step_reached(step=d.step, at=at)
            case Send():
                self._message_requested(
                    step=d.step,
                    send_id=send_id_for(self.id, d.step, self._visit(d.step)),
                    channel=d.channel,
                    template=d.template,
                    reason=f"journey '{self.journey_id}' v{self.journey_version} step '{d.step}' "
                    f"({self._decided_before(d.step)})",
                    at=at,
                    lead_id=self.lead_id,
                    journey_id=self.journey_id,
                    journey_version=self.journey_version,
                )
            case SkipSend():
                self._message_skipped(step=d.step, reason=d.reason, at=at)
            case Wait():
                self._wait_started(step=d.step, due_at=d.due_at, kind=d.kind, at=at)
            case EndWait():
                self.check_waiting_at(d.step)
                self._wait_ended(step=d.step, outcome=d.outcome, at=at)
            case Branch():
                self._branch_taken(step=d.step, to=d.to, case=d.case, values=d.values, at=at, lead_id=self.lead_id)
            case Split():
                self._split_assigned(step=d.step, arm=d.arm, bucket=d.bucket, at=at)
            case Task():
                self._task_created(
                    step=d.step,
                    task_id=derive_id("task", self.id, d.step, self._visit(d.step)),
                    kind=d.kind,
                    queue=d.queue,
                    note=d.note,
                    due_at=d.due_at,
                    at=at,
                )
            case Update():
                self._lead_update_requested(lead_id=self.lead_id, step=d.step, stage=d.stage, tag=d.tag, at=at)
            case GoalReached():
                self._goal_reached(stage=d.stage, within_window=d.within_window, at=at)
            case Exit():
                self._exited(reason=d.reason, detail=d.detail, at=at, step=d.step)
            case _:
                assert_never(d)

    def observe(self, observed: Observed) -> None:
        """Remember a lifecycle event for a later wait_for step."""
        if self.is_active:
            self._event_observed(event=observed.event, key=observed.key, at=observed.at)

    def migrate(self, to_version: int, to_step: str | None, at: datetime) -> None:
        """Move to another published version (the caller then runs from ``to_step``)."""
        self._migrated(
            from_version=self.journey_version,
            to_version=to_version,
            from_step=self.current_step,
            to_step=to_step,
            at=at,
        )

    @event(StepReached)
    def _step_reached(self, step: str, at: datetime) -> None:
        if self.waiting_step is not None and self.waiting_step != step:
            self._end_wait(self.waiting_step, ELAPSED)
        self.current_step = step
        self.visits[step] = self.visits.get(step, 0) + 1

    @event(MessageRequested)
    def _message_requested(
        self,
        step: str,
        send_id: UUID,
        channel: str,
        template: str,
        reason: str,
        at: datetime,
        lead_id: UUID | None,
        journey_id: str,
        journey_version: int,
    ) -> None:
        self._arrive(step)
        self.sent_templates.add(template)
        self.last_decision = f"after step '{step}'"

    @event(MessageSkipped)
    def _message_skipped(self, step: str, reason: str, at: datetime) -> None:
        self._arrive(step)
        self.last_decision = f"after skipping '{step}'"

    @event(WaitStarted)
    def _wait_started(self, step: str, due_at: datetime, kind: str, at: datetime) -> None:
        self._arrive(step)
        self.waiting_step = step
        self.waiting_kind = kind
        self.due_at = due_at

    @event(WaitEnded)
    def _wait_ended(self, step: str, outcome: str, at: datetime) -> None:
        self._end_wait(step, outcome)

    def _end_wait(self, step: str, outcome: str) -> None:
        self.waiting_step = None
        self.waiting_kind = None
        self.due_at = None
        self.last_decision = _after_waiting(step, outcome)

    @event(BranchTaken)
    def _branch_taken(
        self, step: str, to: str, case: str, values: dict[str, Any], at: datetime, lead_id: UUID | None
    ) -> None:
        self._arrive(step)
        # The values stay in the (sealed) event; the state, which snapshots keep, names none.
        self.last_decision = f"branch '{step}' took '{case}' on {', '.join(values) or 'no value'}"

    @event(SplitAssigned)
    def _split_assigned(self, step: str, arm: str, bucket: int, at: datetime) -> None:
        self._arrive(step)
        self.last_decision = f"split '{step}' assigned arm '{arm}' (bucket {bucket})"

    @event(TaskCreated)
    def _task_created(
        self, step: str, task_id: UUID, kind: str, queue: str, note: str, due_at: datetime, at: datetime
    ) -> None:
        self._arrive(step)
        self.last_decision = f"after {kind} task for {queue}"

    @event(LeadUpdateRequested)
    def _lead_update_requested(
        self, lead_id: UUID, step: str, stage: str | None, tag: str | None, at: datetime
    ) -> None:
        self._arrive(step)

    @event(EventObserved)
    def _event_observed(self, event: str, key: str, at: datetime) -> None:
        self.observed.append(Observed(event, key, at))

    @event(GoalReached)
    def _goal_reached(self, stage: str, within_window: bool, at: datetime) -> None:
        pass

    @event(Migrated)
    def _migrated(
        self, from_version: int, to_version: int, from_step: str | None, to_step: str | None, at: datetime
    ) -> None:
        self.journey_version = to_version
        self.waiting_step = None
        self.waiting_kind = None
        self.due_at = None
        self.last_decision = f"migrated from v{from_version} step '{from_step}'"

    @event(Exited)
    def _exited(self, reason: str, detail: str, at: datetime, step: str | None) -> None:
        if step is not None:
            self._arrive(step)
        self.exit_reason = reason
        self.exited_at = at
        self.waiting_step = None
        self.due_at = None


keep_topics("engine.domain.enrolment", Enrolment)

#: Decisions whose own event names their step, and so records reaching it.
STEP_DECISIONS = (Send, SkipSend, Wait, Branch, Split, Task, Update, Exit)

#: How a wait ends when its time comes, as planned.
ELAPSED = "elapsed"


def _after_waiting(step: str, outcome: str) -> str:
    return f"after waiting at '{step}': {outcome}"


#: The events that record reaching their step when the enrolment was elsewhere (views count
#: reaches from these the way ``Enrolment._arrive`` does).
STEP_EVENTS = (
    Enrolment.MessageRequested,
    Enrolment.MessageSkipped,
    Enrolment.WaitStarted,
    Enrolment.BranchTaken,
    Enrolment.SplitAssigned,
    Enrolment.TaskCreated,
    Enrolment.LeadUpdateRequested,
    Enrolment.Exited,  # when an exit step ended it (``step`` set)
)


#: Personal values in Enrolment events, sealed with the lead's own key (named by ``lead_id``).
PII_FIELDS: dict[type[Any], dict[str, Any]] = {Enrolment.BranchTaken: {"values": {}}}
