"""Parse and validate journey YAML data into a Journey; every problem names file, line and step."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import timedelta
from typing import Any, cast, get_args

from engine.domain.journeys.checks import check_clicks, check_date_fields, check_fair_lending, check_graph
from engine.domain.journeys.journey import (
    LIFECYCLE_EVENTS,
    LINE_KEY,
    STEP_KINDS,
    Entry,
    EntryOn,
    Goal,
    Journey,
    Purpose,
    Reentry,
    Step,
)
from engine.domain.journeys.problems import Problems, either, strip
from engine.domain.journeys.step_parsers import PARSERS
from engine.domain.shared.conditions import check_condition
from engine.domain.shared.durations import parse_duration
from engine.domain.shared.errors import JourneyValidationError
from engine.domain.shared.fields import FIELDS, LOAN_TYPES
from engine.domain.shared.values import Stage

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
    "priority",
    "product",
    LINE_KEY,
}


def content_hash(data: Any) -> str:
    """Stable hash of a journey's content (line numbers excluded)."""
    return hashlib.sha256(json.dumps(strip(data), sort_keys=True, default=str).encode()).hexdigest()


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
    # Documentation for the marketer (who the journey is written for): any text; the entry
    # filter decides who enters.
    audience = str(data["audience"]).strip() or None if data.get("audience") is not None else None
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
        p.add("journey", f"'purpose' must be {either(Purpose)}, got {purpose!r}")
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
        priority=_priority(data.get("priority", 50), p),
        product=_product(data.get("product"), p),
        purpose=purpose,
        source=source,
        content_hash=content_hash(data),
    )
    check_graph(journey, p)
    check_clicks(journey, p)
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
            f"'on' must be {either(EntryOn)}, got {on!r}",
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
        p.add("entry", f"'reentry' must be {either(Reentry)}, got {reentry!r}", line)
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


def _priority(raw: Any, p: Problems) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= 100:
        p.add("journey", f"'priority' must be a whole number from 0 to 100, got {raw!r}")
        return 50
    return raw


def _product(raw: Any, p: Problems) -> str | None:
    if raw is None:
        return None
    if raw not in LOAN_TYPES:
        p.add("journey", f"'product' must be a loan type ({', '.join(LOAN_TYPES)}), got {raw!r}")
        return None
    return str(raw)
