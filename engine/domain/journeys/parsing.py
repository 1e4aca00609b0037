"""Parse and validate journey YAML data into a Journey; every problem names file, line and step."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from datetime import datetime, time, timedelta
from typing import Any, cast, get_args

from engine.domain.journeys.journey import (
    LIFECYCLE_EVENTS,
    LINE_KEY,
    STEP_KINDS,
    BranchCase,
    BranchOn,
    BranchStep,
    Channel,
    Entry,
    EntryOn,
    ExitStep,
    Goal,
    Journey,
    OutsideWindow,
    Purpose,
    Reentry,
    SendStep,
    SplitArm,
    SplitStep,
    StalePolicy,
    Step,
    TaskKind,
    TaskStep,
    UpdateStep,
    WaitForStep,
    WaitStep,
    WhenCapped,
)
from engine.domain.shared.conditions import check_condition, fields_in
from engine.domain.shared.durations import CalendarOffset, parse_duration, parse_offset
from engine.domain.shared.errors import JourneyValidationError
from engine.domain.shared.fields import FIELDS
from engine.domain.shared.values import PROHIBITED_BASES, Audience, Stage

_DURATION = re.compile(r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?$")
_OFFSET = re.compile(r"^(-)?(?:(\d+)y)?(?:(\d+)mo)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?$")
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_TOP_KEYS = {
    "purpose",
    "id",
    "name",
    "description",
    "audience",
    "entry",
    "goals",
    "exit_when",
    "start",
    "steps",
    "locales",
    "vars",
    "offers",
    LINE_KEY,
}


def content_hash(data: Any) -> str:
    """Stable hash of a journey's content (line numbers excluded)."""
    return hashlib.sha256(json.dumps(strip(data), sort_keys=True, default=str).encode()).hexdigest()


def strip(data: Any) -> Any:
    """Remove loader line markers recursively."""
    if isinstance(data, dict):
        return {k: strip(v) for k, v in data.items() if k != LINE_KEY}
    if isinstance(data, list):
        return [strip(v) for v in data]
    return data


class Problems:
    """Collects problems, each prefixed by file and line."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.items: list[str] = []

    def add(self, where: str, problem: str, line: int = 0) -> None:
        at = f"{self.source}:{line}" if line else self.source
        self.items.append(f"{at}: {where}: {problem}")


def parse_journey(data: Any, source: str = "<journey>") -> Journey:
    """Validate raw YAML data into a Journey; raise listing every problem (file, line, step)."""
    p = Problems(source)
    if not isinstance(data, dict):
        raise JourneyValidationError([f"{source}: expected a mapping at the top level"])
    for key in sorted(set(data) - _TOP_KEYS):
        p.add("journey", f"unknown key {key!r}", data.get(LINE_KEY, 0))
    jid = str(data.get("id") or "")
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", jid):
        p.add("journey", "'id' must be lower-case letters, digits, '-' or '_'")
    audience = None
    if data.get("audience") is not None:
        try:
            audience = Audience(data["audience"])
        except ValueError:
            p.add("journey", f"unknown audience {data['audience']!r}")
    entry = _parse_entry(data.get("entry"), p)
    goals = _parse_goals(data.get("goals") or [], p)
    exit_when = data.get("exit_when")
    if exit_when is not None:
        for problem in check_condition(strip(exit_when), "exit_when"):
            p.add("journey", problem)
    steps: dict[str, Step] = {}
    raw_steps = data.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        p.add("journey", "'steps' must be a non-empty list")
        raw_steps = []
    for n, raw in enumerate(raw_steps, 1):
        step = _parse_step(raw, n, p)
        if step is None:
            continue
        if step.id in steps:
            p.add(f"step '{step.id}'", "duplicate step id", step.line)
        steps[step.id] = step
    first = raw_steps[0].get("id") if raw_steps and isinstance(raw_steps[0], dict) else ""
    purpose = data.get("purpose", "marketing")
    if purpose not in get_args(Purpose):
        p.add("journey", f"'purpose' must be {_either(Purpose)}, got {purpose!r}")
        purpose = "marketing"
    journey = Journey(
        id=jid,
        name=str(data.get("name") or jid),
        description=str(data.get("description") or ""),
        audience=audience,
        entry=entry or Entry(on="lead_captured"),
        goals=tuple(goals),
        exit_when=strip(exit_when) if exit_when is not None else None,
        start=str(data.get("start") or first),
        steps=steps,
        locales=tuple(str(x) for x in (data.get("locales") or ["zh-CN", "en"])),
        vars={str(k): str(v) for k, v in (data.get("vars") or {}).items() if k != LINE_KEY},
        offers=tuple(str(x) for x in (data.get("offers") or [])),
        purpose=purpose,
        source=source,
        content_hash=content_hash(data),
    )
    check_graph(journey, p)
    check_date_fields(journey, p)
    check_fair_lending(journey, p)
    if p.items:
        raise JourneyValidationError(p.items)
    return journey


def _parse_goals(raw: Any, p: Problems) -> list[Goal]:
    goals = []
    for g in raw:
        stage, within = (g.get("stage"), g.get("within")) if isinstance(g, dict) else (g, None)
        try:
            goal_stage = Stage(str(stage))
        except ValueError:
            p.add("goals", f"unknown stage {stage!r} (stages: {', '.join(s.value for s in Stage)})")
            continue
        window = parse_duration(within) if within is not None else None
        if within is not None and window is None:
            p.add("goals", f"'within' needs a duration like 30d, got {within!r}")
        goals.append(Goal(goal_stage, window))
    return goals


def _parse_entry(raw: Any, p: Problems) -> Entry | None:
    if not isinstance(raw, dict):
        p.add("entry", "'entry' is required: {on: lead_captured | stage_reached | segment_entered | lifecycle_event}")
        return None
    line = raw.get(LINE_KEY, 0)
    known = {"on", "stage", "segment", "event", "key", "when", "requires", "reentry", "cooldown", "cap", LINE_KEY}
    for key in sorted(set(raw) - known):
        p.add("entry", f"unknown key {key!r}", line)
    on = raw.get("on")
    if on not in get_args(EntryOn):
        p.add(
            "entry",
            f"'on' must be {_either(EntryOn)}, got {on!r}",
            line,
        )
        return None
    stage = None
    if on == "stage_reached":
        try:
            stage = Stage(str(raw.get("stage")))
        except ValueError:
            p.add("entry", f"stage_reached needs a valid 'stage', got {raw.get('stage')!r}", line)
    if on == "segment_entered" and not raw.get("segment"):
        p.add("entry", "segment_entered needs 'segment'", line)
    event = raw.get("event")
    if on == "lifecycle_event" and event not in LIFECYCLE_EVENTS:
        p.add("entry", f"lifecycle_event needs 'event': one of {', '.join(LIFECYCLE_EVENTS)}; got {event!r}", line)
    key = bool(raw.get("key", False))
    if key and on != "lifecycle_event":
        p.add("entry", "'key: true' (one run per application) needs on: lifecycle_event", line)
    when = strip(raw.get("when", "always"))
    for problem in check_condition(when, "entry.when"):
        p.add("entry", problem, line)
    requires = tuple(str(f) for f in raw.get("requires") or [])
    for f in requires:
        if f not in FIELDS:
            p.add("entry", f"requires unknown field {f!r}", line)
    reentry = raw.get("reentry", "never")
    if reentry not in get_args(Reentry):
        p.add("entry", f"'reentry' must be {_either(Reentry)}, got {reentry!r}", line)
        reentry = "never"
    cooldown = timedelta(0)
    if raw.get("cooldown") is not None:
        cooldown = parse_duration(raw["cooldown"]) or timedelta(0)
        if not cooldown:
            p.add("entry", f"'cooldown' needs a duration like 30d, got {raw['cooldown']!r}", line)
    cap = raw.get("cap")
    if cap is not None and (not isinstance(cap, int) or cap < 1):
        p.add("entry", f"'cap' must be a positive whole number, got {cap!r}", line)
        cap = None
    return Entry(
        on=cast(EntryOn, on),
        stage=stage,
        segment=raw.get("segment"),
        event=event,
        key=key,
        when=when,
        requires=requires,
        reentry=reentry,
        cooldown=cooldown,
        cap=cap,
    )


def _parse_step(raw: Any, n: int, p: Problems) -> Step | None:
    if not isinstance(raw, dict):
        p.add(f"steps[{n}]", "each step must be a mapping")
        return None
    line = raw.get(LINE_KEY, 0)
    sid = str(raw.get("id") or "")
    where = f"step '{sid}'" if sid else f"steps[{n}]"
    if not sid:
        p.add(where, "every step needs an 'id'", line)
        return None
    kinds = [k for k in STEP_KINDS if k in raw]
    if len(kinds) != 1:
        p.add(where, f"a step needs exactly one of {', '.join(STEP_KINDS)}; found {kinds or 'none'}", line)
        return None
    kind = kinds[0]
    extra = set(raw) - {"id", "next", "on_timeout", "stale", "outside_window", "when_capped", "label", LINE_KEY, kind}
    if extra:
        p.add(where, f"unknown keys {sorted(extra)}", line)
    nxt = str(raw["next"]) if raw.get("next") is not None else None
    body = raw[kind]
    return PARSERS[kind](sid, body, raw, nxt, line, where, p)


def _send(sid: str, body: Any, raw: dict[str, Any], nxt: str | None, line: int, where: str, p: Problems) -> Step | None:
    if not isinstance(body, dict) or "channel" not in body or "template" not in body:
        p.add(where, "send needs {channel: email|sms|webhook, template: NAME}", line)
        return None
    if body["channel"] not in get_args(Channel):
        p.add(where, f"unknown channel {body['channel']!r} ({', '.join(get_args(Channel))})", line)
        return None
    stale = raw.get("stale", "skip")
    if stale not in get_args(StalePolicy):
        p.add(where, f"'stale' must be {_either(StalePolicy)}, got {stale!r}", line)
        stale = "skip"
    outside = raw.get("outside_window", "wait")
    if outside not in get_args(OutsideWindow):
        p.add(where, f"'outside_window' must be {_either(OutsideWindow)}, got {outside!r}", line)
        outside = "wait"
    capped = raw.get("when_capped", "defer")
    if capped not in get_args(WhenCapped):
        p.add(where, f"'when_capped' must be {_either(WhenCapped)}, got {capped!r}", line)
        capped = "defer"
    return SendStep(sid, body["channel"], str(body["template"]), nxt, stale, outside, capped, line)


def _wait(sid: str, body: Any, raw: dict[str, Any], nxt: str | None, line: int, where: str, p: Problems) -> Step | None:
    if not isinstance(body, dict):
        duration = parse_duration(body)
        if duration is None:
            p.add(where, f"wait needs a positive duration like 2d, 36h, 1w, 90m; got {body!r}", line)
            return None
        return WaitStep(sid, nxt, duration=duration, line=line)
    if "until" in body:
        try:
            until = datetime.fromisoformat(str(body["until"]))
        except ValueError:
            p.add(
                where,
                f"'until' must be a date/time with offset like 2026-05-01T09:00+08:00, got {body['until']!r}",
                line,
            )
            return None
        if until.tzinfo is None:
            p.add(where, "'until' needs a UTC offset (e.g. +08:00) so it means one moment everywhere", line)
            return None
        return WaitStep(sid, nxt, until=until, line=line)
    if "until_field" in body:
        fieldname = str(body["until_field"])
        if FIELDS.get(fieldname) is None or FIELDS[fieldname].type != "date":
            dates = sorted(f for f, s in FIELDS.items() if s.type == "date")
            p.add(where, f"'until_field' must be a date field ({', '.join(dates)}), got {fieldname!r}", line)
            return None
        offset = parse_offset(body.get("offset", "0d")) if body.get("offset") else CalendarOffset()
        if offset is None:
            p.add(where, f"'offset' needs a span like 3y, 6mo, 2w, -7d; got {body.get('offset')!r}", line)
            return None
        return WaitStep(sid, nxt, until_field=fieldname, offset=offset, line=line)
    if "at" in body:
        try:
            at_local = time.fromisoformat(str(body["at"]))
        except ValueError:
            p.add(where, f"'at' must be a local time like 09:30, got {body['at']!r}", line)
            return None
        days = body.get("weekdays") or list(_WEEKDAYS)
        bad = [d for d in days if str(d).lower()[:3] not in _WEEKDAYS]
        if bad:
            p.add(where, f"unknown weekdays {bad} (mon … sun)", line)
            return None
        weekdays = tuple(sorted({_WEEKDAYS.index(str(d).lower()[:3]) for d in days}))
        return WaitStep(sid, nxt, at_local=at_local, weekdays=weekdays, line=line)
    p.add(where, "wait needs a duration, or {until: DATETIME}, {until_field: F, offset: 3y} or {at: '09:30'}", line)
    return None


def _wait_for(
    sid: str, body: Any, raw: dict[str, Any], nxt: str | None, line: int, where: str, p: Problems
) -> Step | None:
    if not isinstance(body, dict) or body.get("event") not in LIFECYCLE_EVENTS:
        p.add(where, f"wait_for needs 'event': one of {', '.join(LIFECYCLE_EVENTS)}", line)
        return None
    timeout = parse_duration(body.get("timeout"))
    if timeout is None:
        p.add(where, f"wait_for needs 'timeout' like 7d, got {body.get('timeout')!r}", line)
        return None
    if nxt is None or raw.get("on_timeout") is None:
        p.add(where, "wait_for needs 'next' (when the event comes) and 'on_timeout'", line)
        return None
    return WaitForStep(
        sid, body["event"], bool(body.get("same_key", False)), timeout, nxt, str(raw["on_timeout"]), line
    )


def _branch(
    sid: str, body: Any, raw: dict[str, Any], nxt: str | None, line: int, where: str, p: Problems
) -> Step | None:
    if not isinstance(body, dict) or body.get("on") not in get_args(BranchOn):
        p.add(where, f"branch needs 'on': {' | '.join(get_args(BranchOn))}", line)
        return None
    on = body["on"]
    fieldname = "segments" if on == "segment" else str(on)
    if on == "field":
        fieldname = str(body.get("field") or "")
    if "default" not in body:
        p.add(where, "branch needs a 'default' step", line)
        return None
    cases: list[BranchCase] = []
    for k, case in enumerate(body.get("cases") or [], 1):
        if not isinstance(case, dict) or "when" not in case or "next" not in case:
            p.add(where, f"case {k} needs 'when' and 'next'", line)
            continue
        when = strip(case["when"])
        if isinstance(when, dict):
            cond = {"field": fieldname, **when}
        elif isinstance(when, list):
            cond = {"field": fieldname, "in": when}
        else:
            cond = {"field": fieldname, "eq": when}
        for problem in check_condition(cond, f"case {k}"):
            p.add(where, problem, case.get(LINE_KEY, line))
        label = str(case.get("label") or (when if not isinstance(when, dict) else json.dumps(when)))
        cases.append(BranchCase(cond, str(case["next"]), label))
    if not cases:
        p.add(where, "branch needs at least one case", line)
    return BranchStep(sid, on, fieldname, tuple(cases), str(body["default"]), line)


def _split(
    sid: str, body: Any, raw: dict[str, Any], nxt: str | None, line: int, where: str, p: Problems
) -> Step | None:
    if not isinstance(body, dict) or not isinstance(body.get("arms"), list) or not body["arms"]:
        p.add(where, "split needs 'arms': [{label, percent, next | holdout: true}]", line)
        return None
    arms = []
    for k, arm in enumerate(body["arms"], 1):
        if not isinstance(arm, dict) or not isinstance(arm.get("percent"), (int, float)) or arm["percent"] <= 0:
            p.add(where, f"arm {k} needs a positive 'percent'", line)
            return None
        holdout = bool(arm.get("holdout", False))
        if not holdout and not arm.get("next"):
            p.add(where, f"arm {k} needs 'next' (or holdout: true)", line)
            return None
        arms.append(
            SplitArm(
                str(arm.get("label") or f"arm {k}"),
                float(arm["percent"]),
                None if holdout else str(arm["next"]),
                holdout,
            )
        )
    total = sum(a.percent for a in arms)
    if abs(total - 100) > 1e-9:
        p.add(where, f"split percentages add up to {total:g}, not 100", line)
    return SplitStep(sid, str(body.get("salt") or sid), tuple(arms), line)


def _task(sid: str, body: Any, raw: dict[str, Any], nxt: str | None, line: int, where: str, p: Problems) -> Step | None:
    if not isinstance(body, dict) or body.get("kind") not in get_args(TaskKind) or not body.get("queue"):
        p.add(where, f"task needs {{kind: {'|'.join(get_args(TaskKind))}, queue: NAME, note: TEXT, due_in: 1d}}", line)
        return None
    due_in = parse_duration(body.get("due_in", "1d"))
    if due_in is None:
        p.add(where, f"'due_in' needs a duration like 1d, got {body.get('due_in')!r}", line)
        return None
    return TaskStep(sid, body["kind"], str(body["queue"]), str(body.get("note") or ""), due_in, nxt, line)


def _update(
    sid: str, body: Any, raw: dict[str, Any], nxt: str | None, line: int, where: str, p: Problems
) -> Step | None:
    if not isinstance(body, dict) or not ({"stage", "tag"} & set(body)):
        p.add(where, "update needs 'stage' and/or 'tag'", line)
        return None
    stage = None
    if body.get("stage") is not None:
        try:
            stage = Stage(str(body["stage"]))
        except ValueError:
            p.add(where, f"unknown stage {body['stage']!r}", line)
            return None
    tag = str(body["tag"]) if body.get("tag") else None
    if tag is not None and not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", tag):
        p.add(where, f"tag {tag!r} must be lower-case letters, digits, '-' or '_'", line)
        return None
    return UpdateStep(sid, stage, tag, nxt, line)


def _exit(sid: str, body: Any, raw: dict[str, Any], nxt: str | None, line: int, where: str, p: Problems) -> Step:
    return ExitStep(sid, str(body or "completed"), line)


StepParser = Callable[[str, Any, dict[str, Any], "str | None", int, str, Problems], "Step | None"]
#: One parser per step kind, by its YAML key (tests check it covers every kind of ``Step``).
PARSERS: dict[str, StepParser] = {
    SendStep.KIND: _send,
    WaitStep.KIND: _wait,
    WaitForStep.KIND: _wait_for,
    BranchStep.KIND: _branch,
    SplitStep.KIND: _split,
    TaskStep.KIND: _task,
    UpdateStep.KIND: _update,
    ExitStep.KIND: _exit,
}


def _either(literal: Any) -> str:
    """The allowed values of a ``Literal`` type as a marketer reads them: 'a, b or c'."""
    values = list(get_args(literal))
    return ", ".join(values[:-1]) + f" or {values[-1]}" if len(values) > 1 else values[0]


def check_graph(j: Journey, p: Problems) -> None:
    """Dangling steps, unreachable steps, paths that never end, loops without a wait."""
    if j.start not in j.steps:
        p.add("journey", f"start step {j.start!r} does not exist")
        return
    for step in j.steps.values():
        for target in j.successors(step):
            if target not in j.steps:
                p.add(f"step '{step.id}'", f"leads to unknown step {target!r}", step.line)
    if p.items:
        return
    reachable: set[str] = set()
    todo = [j.start]
    while todo:
        sid = todo.pop()
        if sid not in reachable:
            reachable.add(sid)
            todo.extend(j.successors(j.steps[sid]))
    for sid in sorted(j.steps.keys() - reachable):
        p.add(f"step '{sid}'", f"is unreachable from start step {j.start!r}", j.steps[sid].line)
    can_end = {s.id for s in j.steps.values() if not j.successors(s) or _has_end_arm(s)}
    changed = True
    while changed:
        changed = False
        for s in j.steps.values():
            if s.id not in can_end and any(t in can_end for t in j.successors(s)):
                can_end.add(s.id)
                changed = True
    for sid in sorted(j.steps.keys() - can_end):
        p.add(f"step '{sid}'", "no path from here ever ends (add an exit)", j.steps[sid].line)
    for sid in sorted(_cycles_without_wait(j)):
        p.add(f"step '{sid}'", "is on a loop without a wait step", j.steps[sid].line)


def _has_end_arm(step: Step) -> bool:
    return isinstance(step, SplitStep) and any(a.next is None for a in step.arms)


def _cycles_without_wait(j: Journey) -> set[str]:
    """Steps on a cycle made only of non-wait steps (would spin forever)."""
    waits = (WaitStep, WaitForStep)
    graph = {s.id: list(j.successors(s)) for s in j.steps.values() if not isinstance(s, waits)}
    on_cycle: set[str] = set()
    for start in graph:
        stack, seen = [start], set()
        while stack:
            node = stack.pop()
            for t in graph.get(node, []):
                if t == start:
                    on_cycle.add(start)
                elif t in graph and t not in seen:
                    seen.add(t)
                    stack.append(t)
    return on_cycle


def check_date_fields(j: Journey, p: Problems) -> None:
    """A wait on a date field the lead may not have must be guarded by entry.requires."""
    for step in j.steps.values():
        if isinstance(step, WaitStep) and step.until_field:
            spec = FIELDS[step.until_field]
            if not spec.always and step.until_field not in j.entry.requires:
                p.add(
                    f"step '{step.id}'",
                    f"waits on {step.until_field!r}, which a lead may not have; add it to entry.requires",
                    step.line,
                )


def check_fair_lending(j: Journey, p: Problems) -> None:
    """A branch on a prohibited basis (e.g. age) may change tone or channel, never the offers.

    Offers are the templates listed under ``offers``: every arm of such a branch must be able
    to reach the same set of them.
    """
    offers = set(j.offers)
    for step in j.steps.values():
        if not isinstance(step, BranchStep):
            continue
        basis = set().union(*(fields_in(c.when) for c in step.cases)) & PROHIBITED_BASES
        if not basis:
            continue
        reach = {target: _offers_from(j, target, offers) for target in {c.next for c in step.cases} | {step.default}}
        if len({frozenset(v) for v in reach.values()}) > 1:
            shown = "; ".join(f"'{t}' → {sorted(v) or 'none'}" for t, v in sorted(reach.items()))
            p.add(
                f"step '{step.id}'",
                f"branches on {', '.join(sorted(basis))} (a prohibited basis) and its arms lead to different "
                f"offers ({shown}); it may change tone or channel only (fair lending, DOMAIN.md)",
                step.line,
            )


def _offers_from(j: Journey, start: str, offers: set[str]) -> set[str]:
    seen, todo, found = set(), [start], set()
    while todo:
        sid = todo.pop()
        if sid in seen:
            continue
        seen.add(sid)
        step = j.steps[sid]
        if isinstance(step, SendStep) and step.template in offers:
            found.add(step.template)
        todo.extend(j.successors(step))
    return found
