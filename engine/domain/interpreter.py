"""The pure journey interpreter: (definition, enrolment state, lead facts, now) → decisions.

Deciding is kept apart from doing: nothing here touches storage, clocks or channels.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, assert_never

from engine.domain.conditions import evaluate
from engine.domain.journey import BranchStep, ExitStep, Journey, SendStep, WaitStep

#: A journey validated to have no wait-less loop cannot exceed this; it guards corrupt state.
MAX_STEPS_PER_DECISION = 500


@dataclass(frozen=True)
class Reach:
    step: str


@dataclass(frozen=True)
class Send:
    step: str
    channel: str
    template: str


@dataclass(frozen=True)
class Wait:
    step: str
    due_at: datetime


@dataclass(frozen=True)
class EndWait:
    step: str


@dataclass(frozen=True)
class Branch:
    step: str
    to: str
    case: str
    values: dict[str, Any]


@dataclass(frozen=True)
class Exit:
    reason: str
    detail: str


Decision = Reach | Send | Wait | EndWait | Branch | Exit


@dataclass(frozen=True)
class EntryVerdict:
    """Whether a lead may enter a journey, and why (or why not)."""

    accepted: bool
    reason: str


def check_entry(journey: Journey, trigger: str, facts: dict[str, Any]) -> EntryVerdict:
    """Decide entry for a lead event of kind ``trigger`` ('lead_captured' or 'stage:<stage>')."""
    entry = journey.entry
    if entry.on == "lead_captured" and trigger != "lead_captured":
        return EntryVerdict(False, "not an entry trigger")
    if entry.on == "stage_reached" and entry.stage and trigger != f"stage:{entry.stage.value}":
        return EntryVerdict(False, "not an entry trigger")
    if not evaluate(entry.when, facts):
        return EntryVerdict(False, "entry filter did not match")
    missing = [f for f in entry.requires if f not in facts]
    if missing:
        return EntryVerdict(False, f"missing required fields: {', '.join(missing)}")
    ended = exit_check(journey, facts)
    if ended is not None:
        return EntryVerdict(False, f"already meets exit: {ended.detail}")
    trigger_text = "lead captured" if trigger == "lead_captured" else f"stage reached {trigger[6:]}"
    return EntryVerdict(True, f"entered on {trigger_text}")


def start(journey: Journey, facts: dict[str, Any], now: datetime) -> list[Decision]:
    """Decisions for a freshly enrolled lead."""
    return run_from(journey, journey.start, facts, now)


def resume(journey: Journey, waiting_step: str, facts: dict[str, Any], now: datetime) -> list[Decision]:
    """Decisions when the wait at ``waiting_step`` has come due."""
    step = journey.step(waiting_step)
    if not isinstance(step, WaitStep):
        raise TypeError(f"step {waiting_step!r} of {journey.id} is not a wait")
    decisions: list[Decision] = [EndWait(step.id)]
    if step.next is None:
        return [*decisions, Exit("completed", f"journey ended after step '{step.id}'")]
    return decisions + run_from(journey, step.next, facts, now)


def exit_check(journey: Journey, facts: dict[str, Any]) -> Exit | None:
    """A goal reached or exit criterion met ends the enrolment wherever it is."""
    stage = facts.get("stage")
    if stage in {g.value for g in journey.goals}:
        return Exit("goal_reached", f"stage {stage}")
    if journey.exit_when is not None and evaluate(journey.exit_when, facts):
        return Exit("exit_criteria", "exit_when matched")
    return None


def run_from(journey: Journey, step_id: str, facts: dict[str, Any], now: datetime) -> list[Decision]:
    """Walk steps from ``step_id`` until a wait or an end."""
    decisions: list[Decision] = []
    current: str | None = step_id
    for _ in range(MAX_STEPS_PER_DECISION):
        if current is None:
            decisions.append(Exit("completed", "end of journey"))
            return decisions
        step = journey.step(current)
        decisions.append(Reach(step.id))
        match step:
            case SendStep():
                decisions.append(Send(step.id, step.channel.value, step.template))
                current = step.next
            case WaitStep():
                decisions.append(Wait(step.id, now + step.duration))
                return decisions
            case BranchStep():
                branch = choose(step, facts)
                decisions.append(branch)
                current = branch.to
            case ExitStep():
                decisions.append(Exit(step.reason, f"reached exit step '{step.id}'"))
                return decisions
            case _:
                assert_never(step)
    decisions.append(Exit("error", f"more than {MAX_STEPS_PER_DECISION} steps without a wait"))
    return decisions


def choose(step: BranchStep, facts: dict[str, Any]) -> Branch:
    """The first matching case, else the default; records the value that decided it."""
    values = {step.field: _plain(facts.get(step.field))}
    for case in step.cases:
        if evaluate(case.when, facts):
            return Branch(step.id, case.next, case.label, values)
    return Branch(step.id, step.default, "default", values)


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool, list)):
        return value
    return str(value)
