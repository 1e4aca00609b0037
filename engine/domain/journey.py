"""Journey definitions: a small closed vocabulary of steps, validated before anything runs."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from engine.domain.conditions import check_condition
from engine.domain.errors import JourneyValidationError
from engine.domain.values import Audience, MessageChannel, Stage

LINE_KEY = "__line__"  # set by the YAML loader on every mapping, for error messages

_DURATION = re.compile(r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?$")

BranchOn = Literal["audience", "segment", "stage", "tier", "field"]
EntryOn = Literal["lead_captured", "stage_reached"]


@dataclass(frozen=True)
class SendStep:
    """Send one message on a channel from a template."""

    id: str
    channel: MessageChannel
    template: str
    next: str | None
    line: int = 0


@dataclass(frozen=True)
class WaitStep:
    """Wait a fixed duration before the next step."""

    id: str
    duration: timedelta
    next: str | None
    line: int = 0


@dataclass(frozen=True)
class BranchCase:
    """One arm of a branch: a condition over lead facts and the step it leads to."""

    when: Any
    next: str
    label: str


@dataclass(frozen=True)
class BranchStep:
    """Choose the next step from the lead's audience, segment, stage, tier or a profile field."""

    id: str
    on: BranchOn
    field: str
    cases: tuple[BranchCase, ...]
    default: str
    line: int = 0


@dataclass(frozen=True)
class ExitStep:
    """Leave the journey with a reason."""

    id: str
    reason: str
    line: int = 0


Step = SendStep | WaitStep | BranchStep | ExitStep


@dataclass(frozen=True)
class Entry:
    """Which lead events enrol a lead, and which leads qualify."""

    on: EntryOn
    stage: Stage | None = None
    when: Any = "always"
    requires: tuple[str, ...] = ()


@dataclass(frozen=True)
class Journey:
    """A validated journey definition; immutable once published."""

    id: str
    name: str
    description: str
    audience: Audience | None
    entry: Entry
    goals: tuple[Stage, ...]
    exit_when: Any
    start: str
    steps: dict[str, Step]
    locales: tuple[str, ...]
    vars: dict[str, str] = field(default_factory=dict)
    source: str = ""
    content_hash: str = ""

    def step(self, step_id: str) -> Step:
        return self.steps[step_id]

    def successors(self, step: Step) -> list[str]:
        """Steps directly reachable from ``step``."""
        match step:
            case BranchStep():
                return [c.next for c in step.cases] + [step.default]
            case ExitStep():
                return []
            case _:
                return [step.next] if step.next else []

    def sends(self) -> list[SendStep]:
        return [s for s in self.steps.values() if isinstance(s, SendStep)]


def parse_duration(text: Any) -> timedelta | None:
    """Parse '2d', '36h', '1w2d', '90m'; None when malformed or zero."""
    m = _DURATION.match(str(text).strip())
    if not m or not any(m.groups()):
        return None
    w, d, h, mi = (int(g or 0) for g in m.groups())
    delta = timedelta(weeks=w, days=d, hours=h, minutes=mi)
    return delta if delta > timedelta(0) else None


class _Problems:
    def __init__(self, source: str) -> None:
        self.source = source
        self.items: list[str] = []

    def add(self, where: str, problem: str, line: int = 0) -> None:
        at = f"{self.source}:{line}" if line else self.source
        self.items.append(f"{at}: {where}: {problem}")


_STEP_KINDS = ("send", "wait", "branch", "exit")


def parse_journey(data: Any, source: str = "<journey>") -> Journey:
    """Validate raw YAML data into a Journey; raise listing every problem (file, line, step)."""
    p = _Problems(source)
    if not isinstance(data, dict):
        raise JourneyValidationError([f"{source}: expected a mapping at the top level"])
    known = {
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
        LINE_KEY,
    }
    for key in sorted(set(data) - known):
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
    goals = []
    for g in data.get("goals") or []:
        try:
            goals.append(Stage(g))
        except ValueError:
            p.add("goals", f"unknown stage {g!r} (stages: {', '.join(s.value for s in Stage)})")
    exit_when = data.get("exit_when")
    if exit_when is not None:
        for problem in check_condition(_strip(exit_when), "exit_when"):
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
    locales = tuple(str(x) for x in (data.get("locales") or ["zh-CN", "en"]))
    journey = Journey(
        id=jid,
        name=str(data.get("name") or jid),
        description=str(data.get("description") or ""),
        audience=audience,
        entry=entry or Entry(on="lead_captured"),
        goals=tuple(goals),
        exit_when=_strip(exit_when) if exit_when is not None else None,
        start=str(
            data.get("start") or (raw_steps[0].get("id") if raw_steps and isinstance(raw_steps[0], dict) else "")
        ),
        steps=steps,
        locales=locales,
        vars={str(k): str(v) for k, v in (data.get("vars") or {}).items() if k != LINE_KEY},
        source=source,
        content_hash=content_hash(data),
    )
    _check_graph(journey, p)
    if p.items:
        raise JourneyValidationError(p.items)
    return journey


def content_hash(data: Any) -> str:
    """Stable hash of a journey's content (line numbers excluded)."""
    return hashlib.sha256(json.dumps(_strip(data), sort_keys=True, default=str).encode()).hexdigest()


def _strip(data: Any) -> Any:
    """Remove loader line markers recursively."""
    if isinstance(data, dict):
        return {k: _strip(v) for k, v in data.items() if k != LINE_KEY}
    if isinstance(data, list):
        return [_strip(v) for v in data]
    return data


def _parse_entry(raw: Any, p: _Problems) -> Entry | None:
    if not isinstance(raw, dict):
        p.add("entry", "'entry' is required: {on: lead_captured | stage_reached, ...}")
        return None
    line = raw.get(LINE_KEY, 0)
    on = raw.get("on")
    if on not in ("lead_captured", "stage_reached"):
        p.add("entry", f"'on' must be lead_captured or stage_reached, got {on!r}", line)
        return None
    stage = None
    if on == "stage_reached":
        try:
            stage = Stage(str(raw.get("stage")))
        except ValueError:
            p.add("entry", f"stage_reached needs a valid 'stage', got {raw.get('stage')!r}", line)
    when = _strip(raw.get("when", "always"))
    for problem in check_condition(when, "entry.when"):
        p.add("entry", problem, line)
    requires = tuple(str(f) for f in raw.get("requires") or [])
    from engine.domain.facts import FIELDS

    for f in requires:
        if f not in FIELDS:
            p.add("entry", f"requires unknown field {f!r}", line)
    return Entry(on=on, stage=stage, when=when, requires=requires)


def _parse_step(raw: Any, n: int, p: _Problems) -> Step | None:
    if not isinstance(raw, dict):
        p.add(f"steps[{n}]", "each step must be a mapping")
        return None
    line = raw.get(LINE_KEY, 0)
    sid = str(raw.get("id") or "")
    where = f"step '{sid}'" if sid else f"steps[{n}]"
    if not sid:
        p.add(where, "every step needs an 'id'", line)
        return None
    kinds = [k for k in _STEP_KINDS if k in raw]
    if len(kinds) != 1:
        p.add(where, f"a step needs exactly one of {', '.join(_STEP_KINDS)}; found {kinds or 'none'}", line)
        return None
    extra = set(raw) - {"id", "next", "label", LINE_KEY, kinds[0]}
    if extra:
        p.add(where, f"unknown keys {sorted(extra)}", line)
    nxt = str(raw["next"]) if raw.get("next") is not None else None
    body = raw[kinds[0]]
    match kinds[0]:
        case "send":
            if not isinstance(body, dict) or "channel" not in body or "template" not in body:
                p.add(where, "send needs {channel: email|sms, template: NAME}", line)
                return None
            try:
                channel = MessageChannel(body["channel"])
            except ValueError:
                p.add(where, f"unknown channel {body['channel']!r} (email, sms)", line)
                return None
            return SendStep(sid, channel, str(body["template"]), nxt, line)
        case "wait":
            duration = parse_duration(body)
            if duration is None:
                p.add(where, f"wait needs a positive duration like 2d, 36h, 1w, 90m; got {body!r}", line)
                return None
            return WaitStep(sid, duration, nxt, line)
        case "branch":
            return _parse_branch(sid, body, line, where, p)
        case _:
            return ExitStep(sid, str(body or "completed"), line)


def _parse_branch(sid: str, body: Any, line: int, where: str, p: _Problems) -> BranchStep | None:
    if not isinstance(body, dict) or body.get("on") not in ("audience", "segment", "stage", "tier", "field"):
        p.add(where, "branch needs 'on': audience | segment | stage | tier | field", line)
        return None
    on = body["on"]
    fieldname = "segments" if on == "segment" else str(on)
    if on == "field":
        fieldname = str(body.get("field") or "")
    if "default" not in body:
        p.add(where, "branch needs a 'default' step", line)
        return None
    cases: list[BranchCase] = []
    for k, raw in enumerate(body.get("cases") or [], 1):
        if not isinstance(raw, dict) or "when" not in raw or "next" not in raw:
            p.add(where, f"case {k} needs 'when' and 'next'", line)
            continue
        when = _strip(raw["when"])
        if isinstance(when, dict):
            cond = {"field": fieldname, **when}
        elif isinstance(when, list):
            cond = {"field": fieldname, "in": when}
        else:
            cond = {"field": fieldname, "eq": when}
        for problem in check_condition(cond, f"case {k}"):
            p.add(where, problem, raw.get(LINE_KEY, line))
        label = str(raw.get("label") or (when if not isinstance(when, dict) else json.dumps(when)))
        cases.append(BranchCase(cond, str(raw["next"]), label))
    if not cases:
        p.add(where, "branch needs at least one case", line)
    return BranchStep(sid, on, fieldname, tuple(cases), str(body["default"]), line)


def _check_graph(j: Journey, p: _Problems) -> None:
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
    for sid in j.steps.keys() - reachable:
        p.add(f"step '{sid}'", f"is unreachable from start step {j.start!r}", j.steps[sid].line)
    # Every step must be able to reach an end, and no cycle may run without a wait.
    ends = {s.id for s in j.steps.values() if not j.successors(s)}
    can_end = set(ends)
    changed = True
    while changed:
        changed = False
        for s in j.steps.values():
            if s.id not in can_end and any(t in can_end for t in j.successors(s)):
                can_end.add(s.id)
                changed = True
    for sid in j.steps.keys() - can_end:
        p.add(f"step '{sid}'", "no path from here ever ends (add an exit)", j.steps[sid].line)
    for sid in _cycles_without_wait(j):
        p.add(f"step '{sid}'", "is on a loop without a wait step", j.steps[sid].line)


def _cycles_without_wait(j: Journey) -> set[str]:
    """Steps on a cycle made only of non-wait steps (would spin forever)."""
    graph = {s.id: list(j.successors(s)) for s in j.steps.values() if not isinstance(s, WaitStep)}
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
