"""One parser per step kind: YAML mapping in, a step (or its problems) out. The allowed values
come from the ``Literal`` types of ``journey.py``; ``PARSERS`` maps each kind's YAML key to its
parser (a test checks it covers every kind of ``Step``)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime, time
from typing import Any, get_args

from engine.domain.journeys.journey import (
    LIFECYCLE_EVENTS,
    LINE_KEY,
    LINK_CLICKED,
    BranchCase,
    BranchOn,
    BranchStep,
    Channel,
    ExitStep,
    OutsideWindow,
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
from engine.domain.journeys.problems import Problems, either, strip
from engine.domain.shared.conditions import check_condition
from engine.domain.shared.durations import CalendarOffset, parse_duration, parse_offset
from engine.domain.shared.fields import FIELDS
from engine.domain.shared.values import Stage

_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _send(sid: str, body: Any, raw: dict[str, Any], nxt: str | None, line: int, where: str, p: Problems) -> Step | None:
    if not isinstance(body, dict) or "channel" not in body or "template" not in body:
        p.add(where, "send needs {channel: email|sms|webhook, template: NAME}", line)
        return None
    if body["channel"] not in get_args(Channel):
        p.add(where, f"unknown channel {body['channel']!r} ({', '.join(get_args(Channel))})", line)
        return None
    stale = raw.get("stale", "skip")
    if stale not in get_args(StalePolicy):
        p.add(where, f"'stale' must be {either(StalePolicy)}, got {stale!r}", line)
        stale = "skip"
    outside = raw.get("outside_window", "wait")
    if outside not in get_args(OutsideWindow):
        p.add(where, f"'outside_window' must be {either(OutsideWindow)}, got {outside!r}", line)
        outside = "wait"
    capped = raw.get("when_capped", "defer")
    if capped not in get_args(WhenCapped):
        p.add(where, f"'when_capped' must be {either(WhenCapped)}, got {capped!r}", line)
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
    clicks = isinstance(body, dict) and ("click" in body or "click_template" in body)
    if not clicks and (not isinstance(body, dict) or body.get("event") not in LIFECYCLE_EVENTS):
        p.add(
            where,
            f"wait_for needs 'event': one of {', '.join(LIFECYCLE_EVENTS)}; or 'click': a send step of this "
            "journey (or 'click_template': a template)",
            line,
        )
        return None
    timeout = parse_duration(body.get("timeout"))
    if timeout is None:
        p.add(where, f"wait_for needs 'timeout' like 7d, got {body.get('timeout')!r}", line)
        return None
    if nxt is None or raw.get("on_timeout") is None:
        p.add(where, "wait_for needs 'next' (when the event comes) and 'on_timeout'", line)
        return None
    if clicks:
        return WaitForStep(
            sid,
            LINK_CLICKED,
            False,
            timeout,
            nxt,
            str(raw["on_timeout"]),
            line,
            click_step=str(body.get("click") or ""),
            click_template=str(body.get("click_template") or "") if "click" not in body else "",
        )
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
    fieldname = "segments" if on == "segment" else str(on)  # on: clicked reads the ``clicked`` fact
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
