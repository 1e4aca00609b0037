"""Checks of a whole parsed journey: every step reachable and every path ends, no loop without a
wait, date fields that exist, and fair lending (no offer decided on a prohibited basis)."""

from __future__ import annotations

from typing import Any

from engine.domain.journeys.journey import (
    CLICKED,
    LINK_CLICKED,
    BranchStep,
    Journey,
    SendStep,
    SplitStep,
    Step,
    WaitForStep,
    WaitStep,
)
from engine.domain.journeys.problems import Problems
from engine.domain.shared.conditions import fields_in
from engine.domain.shared.fields import FIELDS
from engine.domain.shared.values import PROHIBITED_BASES


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


def check_clicks(j: Journey, p: Problems) -> None:
    """A click wait or a ``clicked`` branch names a step of this journey that sends an e-mail or
    an SMS (a webhook's or a task's links are never tracked)."""

    def check(step: Step, target: str, what: str) -> None:
        sender = j.steps.get(target)
        if not isinstance(sender, SendStep):
            p.add(f"step '{step.id}'", f"{what} {target!r}, which is not a send step of this journey", step.line)
        elif sender.channel not in ("email", "sms"):
            p.add(
                f"step '{step.id}'", f"{what} {target!r}, a {sender.channel} step: its links are not tracked", step.line
            )

    for step in j.steps.values():
        if isinstance(step, WaitForStep) and step.event == LINK_CLICKED and step.click_step:
            check(step, step.click_step, "waits for a click on")
        if isinstance(step, BranchStep) and step.field == CLICKED:
            for case in step.cases:
                for value in _values(case.when):
                    check(step, value, "branches on a click on")


def _values(cond: dict[str, Any]) -> list[str]:
    value = cond.get("eq", cond.get("in", cond.get("not_in", [])))
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


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
