"""What the journey interpreter decides and reads: each decision (reach a step, send, wait, branch,
split, task, update, goal, exit) as a value the application carries out, and the context of one
enrolment at one moment."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any


@dataclass(frozen=True)
class Reach:
    step: str


@dataclass(frozen=True)
class Send:
    step: str
    channel: str
    template: str


@dataclass(frozen=True)
class SkipSend:
    step: str
    reason: str


@dataclass(frozen=True)
class Wait:
    step: str
    due_at: datetime
    kind: str = "time"  # "time" or "event"


@dataclass(frozen=True)
class EndWait:
    step: str
    outcome: str = "elapsed"  # elapsed, event, timeout, already due


@dataclass(frozen=True)
class Branch:
    step: str
    to: str
    case: str
    values: dict[str, Any]


@dataclass(frozen=True)
class Split:
    step: str
    arm: str
    bucket: int
    to: str | None


@dataclass(frozen=True)
class Task:
    step: str
    kind: str
    queue: str
    note: str
    due_at: datetime


@dataclass(frozen=True)
class Update:
    step: str
    stage: str | None
    tag: str | None


@dataclass(frozen=True)
class GoalReached:
    stage: str
    within_window: bool


@dataclass(frozen=True)
class Exit:
    reason: str
    detail: str
    step: str | None = None  # the exit step that ended it, if one did


Decision = Reach | Send | SkipSend | Wait | EndWait | Branch | Split | Task | Update | GoalReached | Exit


@dataclass(frozen=True)
class Observed:
    """A lifecycle event seen by an enrolment since it entered."""

    event: str
    key: str
    at: datetime


@dataclass(frozen=True)
class Context:
    """Everything the interpreter may read about one enrolment at one moment."""

    lead_id: str
    journey_id: str
    facts: dict[str, Any]
    now: datetime
    tz: tzinfo
    entered_at: datetime
    entry_key: str = ""
    observed: tuple[Observed, ...] = ()
    stale: bool = False  # resuming a wait that fell due while the journey was paused
    sent_templates: frozenset[str] = field(default_factory=frozenset)
