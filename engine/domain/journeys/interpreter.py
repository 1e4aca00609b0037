"""The pure journey interpreter: (definition, enrolment context, lead facts, now) → decisions.

Deciding is kept apart from doing: nothing here touches storage, clocks or channels. One
small function per step kind, dispatched exhaustively.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, assert_never

from engine.domain.journeys.decisions import (
    Branch,
    Context,
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
from engine.domain.journeys.journey import (
    CLICKED,
    LINK_CLICKED,
    BranchStep,
    ExitStep,
    Journey,
    SendStep,
    SplitStep,
    Step,
    TaskStep,
    UpdateStep,
    WaitForStep,
    WaitStep,
)
from engine.domain.shared.conditions import evaluate
from engine.domain.shared.fields import UPLIFT_BY_JOURNEY
from engine.domain.shared.values import JourneyStatus

#: A journey validated to have no wait-less loop cannot exceed this; it guards corrupt state.
MAX_STEPS_PER_DECISION = 500
SPLIT_BUCKETS = 10_000


class Entry(StrEnum):
    """What a trigger means for a journey's entry."""

    NOT_TRIGGERED = "not_triggered"  # the journey does not enter on this trigger: nothing to record
    REFUSED = "refused"  # the journey enters on it, but not this lead now (the reason says why)
    ACCEPTED = "accepted"


@dataclass(frozen=True)
class EntryVerdict:
    """Whether a lead may enter a journey, and why (or why not)."""

    entry: Entry
    reason: str

    @property
    def accepted(self) -> bool:
        return self.entry is Entry.ACCEPTED


def journey_facts(journey_id: str, facts: dict[str, Any]) -> dict[str, Any]:
    """The lead's facts as one journey reads them: with its own uplift model's ``uplift_band``
    and ``uplift`` (a lead holds one per journey that has an uplift model)."""
    own = facts.get(UPLIFT_BY_JOURNEY, {}).get(journey_id)
    return {**facts, **own} if own else facts


def entry_trigger(journey: Journey) -> str:
    """The one trigger that can enter a lead into ``journey``: lead_captured, stage:<s>,
    segment:<s>, event:<e> or consent_requested."""
    entry = journey.entry
    return {
        "lead_captured": "lead_captured",
        "stage_reached": f"stage:{entry.stage.value if entry.stage else ''}",
        "segment_entered": f"segment:{entry.segment}",
        "lifecycle_event": f"event:{entry.event}",
        "consent_requested": "consent_requested",
    }[entry.on]


def check_entry(journey: Journey, trigger: str, facts: dict[str, Any]) -> EntryVerdict:
    """Decide entry on the journey's own terms for a trigger (see ``entry_trigger``)."""
    if trigger != entry_trigger(journey):
        return EntryVerdict(Entry.NOT_TRIGGERED, "not an entry trigger")
    entry = journey.entry
    facts = journey_facts(journey.id, facts)
    if not evaluate(entry.when, facts):
        return EntryVerdict(Entry.REFUSED, "entry filter did not match")
    missing = [f for f in entry.requires if f not in facts]
    if missing:
        return EntryVerdict(Entry.REFUSED, f"missing required fields: {', '.join(missing)}")
    ended = goal_or_exit(journey, facts, None, None)
    if ended and isinstance(ended[-1], Exit):
        return EntryVerdict(Entry.REFUSED, f"already meets exit: {ended[-1].detail}")
    asked_for_it = journey.product is not None and facts.get("loan_type") == journey.product
    if journey.purpose == "marketing" and asked_for_it and facts.get("product_fit") == "no_fit":
        return EntryVerdict(Entry.REFUSED, f"no {journey.product} product fits this lead (product matcher)")
    return EntryVerdict(Entry.ACCEPTED, f"entered on {trigger.replace(':', ' ').replace('_', ' ')}")


def decide_entry(
    journey: Journey,
    trigger: str,
    facts: dict[str, Any],
    status: str,
    admission: tuple[bool, str],
    entries: int | None = None,
) -> EntryVerdict:
    """The whole entry decision, in order: the journey's own terms (trigger, filter, required
    facts, exit criteria), then its status (only a live journey takes leads), then the lead's
    history (``admission``: re-entry policy and cool-down), then the entry cap (``entries`` so far,
    needed only when the journey has a cap)."""
    verdict = check_entry(journey, trigger, facts)
    if not verdict.accepted:
        return verdict
    allowed, why_not = admission
    if status != JourneyStatus.LIVE:
        return EntryVerdict(Entry.REFUSED, f"journey is {status}")
    if not allowed:
        return EntryVerdict(Entry.REFUSED, why_not)
    cap = journey.entry.cap
    if cap is not None and (entries or 0) >= cap:
        return EntryVerdict(Entry.REFUSED, f"entry cap of {cap} reached")
    return verdict


class Reaction(StrEnum):
    """What a lead's new facts or lifecycle event did to an enrolment."""

    ENDED = "ended"  # a goal was reached or an exit criterion met
    RESUMED = "resumed"  # the event the enrolment waited for arrived
    OBSERVED = "observed"  # an event a later wait_for step watches: remembered for it
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class Reacted:
    """The verdict and the decisions that carry it out."""

    reaction: Reaction
    decisions: list[Decision]


def react(journey: Journey, waiting_step: str | None, ctx: Context, observed: Observed | None = None) -> Reacted:
    """An active enrolment meets the lead's current facts (and, with ``observed``, a lifecycle
    event), in order: a goal, then an exit criterion, then the event a wait_for step waits for,
    then an event a later step will wait for."""
    ended = goal_or_exit(journey, ctx.facts, ctx.entered_at, ctx.now)
    if ended:
        return Reacted(Reaction.ENDED, ended)
    if observed is None:
        return Reacted(Reaction.UNCHANGED, [])
    if waiting_step is not None:
        decisions = on_event(journey, waiting_step, observed, ctx)
        if decisions:
            return Reacted(Reaction.RESUMED, decisions)
    if observed.event in journey.watched_events():
        return Reacted(Reaction.OBSERVED, [])
    return Reacted(Reaction.UNCHANGED, [])


def on_timer(journey: Journey, waiting_step: str, ctx: Context) -> list[Decision]:
    """A wait fell due: a goal or exit met meanwhile ends the enrolment; otherwise it resumes."""
    return goal_or_exit(journey, ctx.facts, ctx.entered_at, ctx.now) or resume(journey, waiting_step, ctx)


def start(journey: Journey, ctx: Context) -> list[Decision]:
    """Decisions for a freshly enrolled lead."""
    return run_from(journey, journey.start, ctx)


def resume(journey: Journey, waiting_step: str, ctx: Context) -> list[Decision]:
    """Decisions when the timer of the wait at ``waiting_step`` has come due."""
    step = journey.step(waiting_step)
    match step:
        case WaitForStep():
            return [EndWait(step.id, "timeout"), *run_from(journey, step.on_timeout, ctx)]
        case SendStep():  # a rescheduled stale send: send it now
            return [EndWait(step.id, "rescheduled"), *run_from(journey, step.id, ctx)]
        case WaitStep():
            if step.next is None:
                return [EndWait(step.id), Exit("completed", f"journey ended after step '{step.id}'")]
            return [EndWait(step.id), *run_from(journey, step.next, ctx)]
        case BranchStep() | SplitStep() | TaskStep() | UpdateStep() | ExitStep():
            raise TypeError(f"step {waiting_step!r} of {journey.id} is not a wait")
        case _:
            assert_never(step)


def on_event(journey: Journey, waiting_step: str, observed: Observed, ctx: Context) -> list[Decision]:
    """Decisions when a lifecycle event arrives; [] if the enrolment is not waiting for it."""
    step = journey.step(waiting_step)
    if not isinstance(step, WaitForStep) or not _matches(step, observed, ctx):
        return []
    return [EndWait(step.id, "event"), *run_from(journey, step.next, ctx)]


def goal_or_exit(
    journey: Journey, facts: dict[str, Any], entered_at: datetime | None, now: datetime | None
) -> list[Decision]:
    """A goal reached (counted, with its window) or an exit criterion met ends the enrolment."""
    facts = journey_facts(journey.id, facts)
    stage = facts.get("stage")
    for goal in journey.goals:
        if goal.stage.value == stage:
            within = goal.within is None or entered_at is None or now is None or now - entered_at <= goal.within
            return [GoalReached(stage, within), Exit("goal_reached", f"stage {stage}")]
    if journey.exit_when is not None and evaluate(journey.exit_when, facts):
        return [Exit("exit_criteria", "exit_when matched")]
    return []


def run_from(journey: Journey, step_id: str, ctx: Context) -> list[Decision]:
    """Walk steps from ``step_id`` until a wait or an end."""
    decisions: list[Decision] = []
    current: str | None = step_id
    for _ in range(MAX_STEPS_PER_DECISION):
        if current is None:
            decisions.append(Exit("completed", "end of journey"))
            return decisions
        step = journey.step(current)
        decisions.append(Reach(step.id))
        current, stop = _step(step, ctx, decisions)
        if stop:
            return decisions
    decisions.append(Exit("error", f"more than {MAX_STEPS_PER_DECISION} steps without a wait"))
    return decisions


def _step(step: Step, ctx: Context, out: list[Decision]) -> tuple[str | None, bool]:
    """Decide one step: append decisions, return (next step, whether to stop here)."""
    match step:
        case SendStep():
            return _send(step, ctx, out)
        case WaitStep():
            return _wait(step, ctx, out)
        case WaitForStep():
            return _wait_for(step, ctx, out)
        case BranchStep():
            facts = journey_facts(ctx.journey_id, ctx.facts)
            facts = {**facts, CLICKED: clicked_steps(ctx)} if step.field == CLICKED else facts
            branch = choose(step, facts)
            out.append(branch)
            return branch.to, False
        case SplitStep():
            split = assign(step, ctx)
            out.append(split)
            if split.to is None:
                out.append(Exit("holdout", f"split '{step.id}' put the lead in holdout arm '{split.arm}'"))
                return None, True
            return split.to, False
        case TaskStep():
            out.append(Task(step.id, step.kind, step.queue, step.note, ctx.now + step.due_in))
            return step.next, False
        case UpdateStep():
            out.append(Update(step.id, step.stage.value if step.stage else None, step.tag))
            return step.next, False
        case ExitStep():
            out.append(Exit(step.reason, f"reached exit step '{step.id}'", step.id))
            return None, True
        case _:
            assert_never(step)


def _send(step: SendStep, ctx: Context, out: list[Decision]) -> tuple[str | None, bool]:
    if ctx.stale and step.stale == "skip":
        out.append(SkipSend(step.id, "stale: fell due while the journey was paused or no worker ran"))
    elif ctx.stale and step.stale == "reschedule":
        out.append(Wait(step.id, ctx.now + _spread(ctx, step.id), "rescheduled"))
        return None, True
    else:
        out.append(Send(step.id, step.channel, step.template))
    return step.next, False


def _spread(ctx: Context, step_id: str) -> timedelta:
    """Rescheduled stale sends are spread over the next 24 hours, deterministically per lead."""
    return timedelta(minutes=_bucket(ctx.lead_id, ctx.journey_id, step_id, "reschedule") % (24 * 60))


def _wait(step: WaitStep, ctx: Context, out: list[Decision]) -> tuple[str | None, bool]:
    due = due_time(step, ctx)
    if due is None:
        out.append(Exit("error", f"wait '{step.id}': {step.until_field} is unknown for this lead"))
        return None, True
    out.append(Wait(step.id, due))
    if due > ctx.now:
        return None, True
    out.append(EndWait(step.id, "already due"))
    if step.next is None:
        out.append(Exit("completed", f"journey ended after step '{step.id}'"))
        return None, True
    return step.next, False


def due_time(step: WaitStep, ctx: Context) -> datetime | None:
    """When a wait ends: after a duration, at a date, at a date field plus offset, or at the
    next allowed local time of day in the lead's time zone."""
    if step.duration is not None:
        return ctx.now + step.duration
    if step.until is not None:
        return step.until
    if step.until_field is not None:
        base = ctx.facts.get(step.until_field)
        return step.offset.after(base) if isinstance(base, datetime) else None
    assert step.at_local is not None  # noqa: S101 - the parser sets exactly one kind
    local = ctx.now.astimezone(ctx.tz)
    for days in range(8):
        day = (local + timedelta(days=days)).date()
        candidate = datetime.combine(day, step.at_local, tzinfo=ctx.tz)
        if candidate > local and candidate.weekday() in step.weekdays:
            return candidate
    return None


def _wait_for(step: WaitForStep, ctx: Context, out: list[Decision]) -> tuple[str | None, bool]:
    already = [o for o in ctx.observed if _matches(step, o, ctx)]
    out.append(Wait(step.id, ctx.now + step.timeout, "event"))
    if already:
        out.append(EndWait(step.id, "event"))
        return step.next, False
    return None, True


def _matches(step: WaitForStep, observed: Observed, ctx: Context) -> bool:
    if observed.event != step.event or observed.at < ctx.entered_at:
        return False
    if step.event == LINK_CLICKED:
        journey, sent_by, template = click_key_parts(observed.key)
        if step.click_step:
            return journey == ctx.journey_id and sent_by == step.click_step
        return template == step.click_template
    return not step.same_key or observed.key == ctx.entry_key


def click_key(journey_id: str, step: str, template: str) -> str:
    """How a click is keyed when an enrolment observes it: which journey, step and template sent
    the message clicked."""
    return f"{journey_id}|{step}|{template}"


def click_key_parts(key: str) -> tuple[str, str, str]:
    journey, _, rest = key.partition("|")
    step, _, template = rest.partition("|")
    return journey, step, template


def clicked_steps(ctx: Context) -> list[str]:
    """The steps of this journey whose message the lead clicked since entering (the ``clicked``
    fact a branch reads)."""
    found = [click_key_parts(o.key) for o in ctx.observed if o.event == LINK_CLICKED and o.at >= ctx.entered_at]
    return sorted({step for journey, step, _ in found if journey == ctx.journey_id})


def choose(step: BranchStep, facts: dict[str, Any]) -> Branch:
    """The first matching case, else the default; records the value that decided it."""
    values = {step.field: _plain(facts.get(step.field))}
    for case in step.cases:
        if evaluate(case.when, facts):
            return Branch(step.id, case.next, case.label, values)
    return Branch(step.id, step.default, "default", values)


def assign(step: SplitStep, ctx: Context) -> Split:
    """The arm for this lead: a pure function of (lead, journey step, salt)."""
    bucket = _bucket(ctx.lead_id, ctx.journey_id, step.id, step.salt)
    edge = 0.0
    for arm in step.arms:
        edge += arm.percent * SPLIT_BUCKETS / 100
        if bucket < edge:
            return Split(step.id, arm.label, bucket, arm.next)
    last = step.arms[-1]
    return Split(step.id, last.label, bucket, last.next)


def _bucket(*parts: str) -> int:
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") % SPLIT_BUCKETS


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool, list)):
        return value
    return str(value)
