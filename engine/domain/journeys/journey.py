"""Journey definitions: a small closed vocabulary of steps (data, validated before it runs).

Each step kind is a dataclass here with its YAML key (``KIND``) and its outgoing edges; parsing
is in ``step_parsers.py`` (one function per kind), deciding in ``interpreter.py``, describing and
drawing in ``application/journeys/diagrams.py``. Every place that handles steps matches on the
``Step`` union and ends in ``assert_never``, so the type checker names each place a new kind
must be handled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any, ClassVar, Literal, assert_never, get_args

from engine.domain.shared.durations import NO_OFFSET, CalendarOffset
from engine.domain.shared.values import Stage

LINE_KEY = "__line__"  # set by the YAML loader on every mapping, for error messages

#: Lifecycle facts a lender sends in; each carries an application id (the usual entry key).
LIFECYCLE_EVENTS = (
    "application_submitted",
    "application_approved",
    "application_declined",
    "loan_funded",
    "repayment_missed",
    "referred_friend_applied",
    "referral_rewarded",
)

BranchOn = Literal["audience", "segment", "stage", "tier", "field", "clicked"]
EntryOn = Literal["lead_captured", "stage_reached", "segment_entered", "lifecycle_event", "consent_requested"]
Reentry = Literal["never", "after_exit", "always"]
StalePolicy = Literal["skip", "send", "reschedule"]
Channel = Literal["email", "sms", "webhook"]
OutsideWindow = Literal["wait", "skip"]
WhenCapped = Literal["defer", "skip"]
TaskKind = Literal["call", "visit"]
Purpose = Literal["marketing", "service"]


@dataclass(frozen=True)
class SendStep:
    """Send one message (e-mail, SMS or webhook) from a template.

    ``stale`` says what happens when the send fell due while the journey was paused;
    ``outside_window`` when it falls in the lead's quiet hours; ``when_capped`` when a
    frequency cap is reached.
    """

    KIND: ClassVar[str] = "send"

    id: str
    channel: Channel
    template: str
    next: str | None
    stale: StalePolicy = "skip"
    outside_window: OutsideWindow = "wait"
    when_capped: WhenCapped = "defer"
    line: int = 0


@dataclass(frozen=True)
class WaitStep:
    """Wait a duration, until a date, until a date field of the lead plus an offset, or until
    a local time of day on allowed weekdays in the lead's time zone."""

    KIND: ClassVar[str] = "wait"

    id: str
    next: str | None
    duration: timedelta | None = None
    until: datetime | None = None
    until_field: str | None = None
    offset: CalendarOffset = NO_OFFSET
    at_local: time | None = None
    weekdays: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6)
    line: int = 0


#: The lifecycle event of a person's click on a tracked link (see ``engine.domain.delivery.tracking``).
LINK_CLICKED = "link_clicked"
#: The fact a branch reads for the steps of this enrolment whose message the lead clicked.
CLICKED = "clicked"


@dataclass(frozen=True)
class WaitForStep:
    """Wait for a lifecycle event (optionally with the entry key), or for a click on a tracked
    link (``event`` ``link_clicked``: of the message an earlier step of the same enrolment sent,
    ``click_step``, or of any message from a template, ``click_template``), or time out."""

    KIND: ClassVar[str] = "wait_for"

    id: str
    event: str
    same_key: bool
    timeout: timedelta
    next: str
    on_timeout: str
    line: int = 0
    click_step: str = ""
    click_template: str = ""


@dataclass(frozen=True)
class BranchCase:
    """One arm of a branch: a condition over lead facts and the step it leads to."""

    when: Any
    next: str
    label: str


@dataclass(frozen=True)
class BranchStep:
    """Choose the next step from the lead's audience, segment, stage, tier or a profile field."""

    KIND: ClassVar[str] = "branch"

    id: str
    on: BranchOn
    field: str
    cases: tuple[BranchCase, ...]
    default: str
    line: int = 0


@dataclass(frozen=True)
class SplitArm:
    """One arm of a random split; a holdout arm leaves the journey (counted, never messaged)."""

    label: str
    percent: float
    next: str | None
    holdout: bool = False


@dataclass(frozen=True)
class SplitStep:
    """Random split: the arm is a pure function of (lead, journey, step, salt)."""

    KIND: ClassVar[str] = "split"

    id: str
    salt: str
    arms: tuple[SplitArm, ...]
    line: int = 0


@dataclass(frozen=True)
class TaskStep:
    """Create a call or visit task for a loan officer or a branch."""

    KIND: ClassVar[str] = "task"

    id: str
    kind: TaskKind
    queue: str
    note: str
    due_in: timedelta
    next: str | None
    line: int = 0


@dataclass(frozen=True)
class UpdateStep:
    """Update the lead: move its stage forward, add a tag."""

    KIND: ClassVar[str] = "update"

    id: str
    stage: Stage | None
    tag: str | None
    next: str | None
    line: int = 0


@dataclass(frozen=True)
class ExitStep:
    """Leave the journey with a reason."""

    KIND: ClassVar[str] = "exit"

    id: str
    reason: str
    line: int = 0


Step = SendStep | WaitStep | WaitForStep | BranchStep | SplitStep | TaskStep | UpdateStep | ExitStep
#: The YAML keys of the step kinds, in the order the docs list them.
STEP_KINDS: tuple[str, ...] = tuple(kind.KIND for kind in get_args(Step))


def edges(step: Step) -> list[tuple[str, str | None]]:
    """The step's outgoing edges as (label, target); a target of None leaves the journey
    (a holdout arm, or the end after a last step)."""
    match step:
        case BranchStep():
            cases: list[tuple[str, str | None]] = [(c.label, c.next) for c in step.cases]
            return [*cases, ("default", step.default)]
        case SplitStep():
            return [(f"{a.label} {a.percent:g}%", a.next) for a in step.arms]
        case WaitForStep():
            came = f"clicked {step.click_step or step.click_template}" if step.event == LINK_CLICKED else step.event
            return [(came, step.next), ("timeout", step.on_timeout)]
        case ExitStep():
            return []
        case SendStep() | WaitStep() | TaskStep() | UpdateStep():
            return [("", step.next)] if step.next else []
        case _:
            assert_never(step)


@dataclass(frozen=True)
class Entry:
    """Which lead events enrol a lead, which leads qualify, and how often."""

    on: EntryOn
    stage: Stage | None = None
    segment: str | None = None
    event: str | None = None
    key: bool = False  # one enrolment per application id of the triggering event
    when: Any = "always"
    requires: tuple[str, ...] = ()
    reentry: Reentry = "never"
    cooldown: timedelta = timedelta(0)
    cap: int | None = None


@dataclass(frozen=True)
class Goal:
    """A stage that counts as a conversion (within ``within`` of entry, if set) and ends the journey."""

    stage: Stage
    within: timedelta | None = None


@dataclass(frozen=True)
class Journey:
    """A validated journey definition; immutable once published."""

    id: str
    name: str
    description: str
    #: Who the journey is written for, as its author put it (documentation; the entry filter decides).
    audience: str | None
    entry: Entry
    goals: tuple[Goal, ...]
    exit_when: Any
    start: str
    steps: dict[str, Step]
    locales: tuple[str, ...]
    vars: dict[str, str] = field(default_factory=dict)
    offers: tuple[str, ...] = ()
    #: 0-100: when two journeys' marketing messages meet the spacing rule, the higher goes first.
    priority: int = 50
    #: The loan type this journey markets: a lead who asked for it and fits no product is not enrolled.
    product: str | None = None
    purpose: Purpose = "marketing"
    source: str = ""
    content_hash: str = ""

    def step(self, step_id: str) -> Step:
        return self.steps[step_id]

    def successors(self, step: Step) -> list[str]:
        """Steps directly reachable from ``step``."""
        return [target for _, target in edges(step) if target is not None]

    def sends(self) -> list[SendStep]:
        return [s for s in self.steps.values() if isinstance(s, SendStep)]

    def watched_events(self) -> set[str]:
        """Lifecycle events some wait_for step of this journey listens for (and clicks, when a
        branch asks which steps' messages were clicked)."""
        events = {s.event for s in self.steps.values() if isinstance(s, WaitForStep)}
        if any(isinstance(s, BranchStep) and s.field == CLICKED for s in self.steps.values()):
            events.add(LINK_CLICKED)
        return events
