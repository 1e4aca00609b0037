"""Mermaid diagrams generated from a journey definition, optionally with live per-step counts."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any, assert_never

from engine.domain.journeys.journey import (
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
    edges,
)


def _span(delta: timedelta) -> str:
    days, hours = delta.days, delta.seconds // 3600
    return f"{days}d" if days and not hours else f"{days}d{hours}h" if days else f"{hours}h"


def _label(step: Step) -> str:
    match step:
        case SendStep():
            return f"{step.channel}: {step.template}"
        case WaitStep():
            if step.duration is not None:
                return f"wait {_span(step.duration)}"
            if step.until is not None:
                return f"wait until {step.until:%Y-%m-%d %H:%M}"
            if step.until_field is not None:
                return f"wait until {step.until_field} + offset"
            return f"wait until {step.at_local} local"
        case WaitForStep() if step.click_step:
            return f"wait for a click on {step.click_step} (≤ {_span(step.timeout)})"
        case WaitForStep() if step.click_template:
            return f"wait for a click on {step.click_template} (≤ {_span(step.timeout)})"
        case WaitForStep():
            return f"wait for {step.event} (≤ {_span(step.timeout)})"
        case BranchStep():
            return f"branch on {step.field}"
        case SplitStep():
            return "random split"
        case TaskStep():
            return f"{step.kind} task: {step.queue}"
        case UpdateStep():
            return "update lead"
        case ExitStep():
            return f"exit: {step.reason}"
        case _:
            assert_never(step)


def _node(step: Step, text: str) -> str:
    sid = _id(step.id)
    match step:
        case BranchStep() | SplitStep():
            return f'{sid}{{"{text}"}}'
        case WaitStep() | WaitForStep():
            return f'{sid}{{{{"{text}"}}}}'
        case ExitStep():
            return f'{sid}(["{text}"])'
        case SendStep() | TaskStep() | UpdateStep():
            return f'{sid}["{text}"]'
        case _:
            assert_never(step)


def _id(step_id: str) -> str:
    return "s_" + "".join(ch if ch.isalnum() else "_" for ch in step_id)


def mermaid(journey: Journey, counts: dict[str, int] | None = None) -> str:
    """A flowchart of the journey; with ``counts``, each step shows how many leads are there now."""
    lines = ["flowchart TD", f'    start(("{journey.id}")) --> {_id(journey.start)}']
    for step in journey.steps.values():
        text = f"{step.id}<br/>{_label(step)}".replace('"', "'")
        if counts is not None:
            text += f"<br/><b>{counts.get(step.id, 0)} here</b>"
        lines.append(f"    {_node(step, text)}")
    for step in journey.steps.values():
        for label, target in edges(step):
            source = _id(step.id)
            if target is None:  # a holdout arm leaves the journey
                lines.append(f'    {source} -->|"{label}"| {source}_holdout(["holdout: {label.rsplit(" ", 1)[0]}"])')
            elif label:
                lines.append(f'    {source} -->|"{label}"| {_id(target)}')
            else:
                lines.append(f"    {source} --> {_id(target)}")
    return "\n".join(lines) + "\n"


def journey_diff(draft: Journey, live: Journey | None, live_version: int | None) -> dict[str, Any]:
    """Steps added, removed and changed (their definition, not where they sit in the file), and
    send steps whose template changed, of a draft against the live version."""
    if live is None:
        return {"journey_id": draft.id, "live_version": None, "added": sorted(draft.steps), "removed": [],
                "changed": [], "templates": []}  # fmt: skip
    same = set(draft.steps) & set(live.steps)

    def plain(step: Step) -> Step:
        return dataclasses.replace(step, line=0)

    changed = sorted(sid for sid in same if plain(draft.steps[sid]) != plain(live.steps[sid]))
    templates = [
        {"step": sid, "from": live.steps[sid].template, "to": draft.steps[sid].template}  # type: ignore[union-attr]
        for sid in sorted(same)
        if isinstance(draft.steps[sid], SendStep)
        and isinstance(live.steps[sid], SendStep)
        and draft.steps[sid].template != live.steps[sid].template  # type: ignore[union-attr]
    ]
    return {
        "journey_id": draft.id,
        "live_version": live_version,
        "added": sorted(set(draft.steps) - set(live.steps)),
        "removed": sorted(set(live.steps) - set(draft.steps)),
        "changed": changed,
        "templates": templates,
    }


def layered(journey: Journey) -> dict[str, Any]:
    """The journey as a layered drawing: each step at its depth (the fewest steps from the start)
    and a column within that depth, with the edges between them; a holdout arm or a last step's
    way out ends at an "out" node. The dashboard draws it; the layout is computed here, once, so
    every browser draws the same picture."""
    depth: dict[str, int] = {journey.start: 0}
    order = [journey.start]
    for sid in order:  # breadth first: a step's depth is its shortest distance from the start
        for _, target in edges(journey.steps[sid]):
            if target is not None and target not in depth:
                depth[target] = depth[sid] + 1
                order.append(target)
    for sid in journey.steps:  # unreachable steps (validate refuses them) still get drawn
        if sid not in depth:
            depth[sid] = max(depth.values()) + 1
            order.append(sid)
    rows: dict[int, list[str]] = {}
    for sid in order:
        rows.setdefault(depth[sid], []).append(sid)
    widest = max(len(r) for r in rows.values())
    nodes = []
    for d, sids in sorted(rows.items()):
        for i, sid in enumerate(sids):
            step = journey.steps[sid]
            x = (i + 0.5) * widest / len(sids)  # each row centred under the widest
            nodes.append({"id": sid, "kind": type(step).KIND, "label": _label(step), "x": x, "y": -d})
    links = []
    for sid in order:
        for label, target in edges(journey.steps[sid]):
            links.append({"from": sid, "to": target, "label": label})
    return {"nodes": nodes, "edges": links, "width": widest, "depth": max(rows) + 1}
