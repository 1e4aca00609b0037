"""Journey flows and the officers' task queues."""

from __future__ import annotations

import statistics
from collections import defaultdict
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from engine.application.analytics.common import ALL_LEADS, Scope
from engine.application.engine import Engine

# ---- journey flows -----------------------------------------------------------------------------

FLOWS_SCHEMA = "huoke.report.flows/1"


def flows_report(engine: Engine, scope: Scope = ALL_LEADS) -> dict[str, Any]:
    """Each published journey's steps in order: leads that reached each (every version), leads
    there now, and what became of the messages it sent (all time: steps are not dated)."""
    engine.journeys.refresh_live()
    reached: dict[tuple[str, str], int] = defaultdict(int)
    entered: dict[str, int] = defaultdict(int)
    for r in engine.index.outcomes(scope.journey):
        if r["kind"] == "reached":
            reached[(r["journey_id"], r["label"])] += int(r["n"])
        elif r["kind"] == "entered":
            entered[r["journey_id"]] += int(r["n"])
    messages: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for m in engine.funnel.messages():
        messages[(m["journey_id"], m["step"])][m["outcome"]] += int(m["n"])
    journeys = []
    for jid, live in sorted(engine.journeys.live.items()):
        if scope.journey and jid != scope.journey:
            continue
        now = engine.index.step_counts(jid)
        steps = [
            {
                "step": step_id,
                "kind": type(step).KIND,
                "reached": reached[(jid, step_id)],
                "active": now.get(step_id, 0),
                **{k: messages[(jid, step_id)].get(k, 0) for k in ("sent", "skipped", "failed", "clicked")},
            }
            for step_id, step in live.journey.steps.items()
        ]
        journeys.append({"journey_id": jid, "version": live.version, "entered": entered[jid], "steps": steps})
    return {"schema": FLOWS_SCHEMA, "scope": scope.as_dict(), "journeys": journeys}


# ---- officers' tasks ---------------------------------------------------------------------------

TASKS_SCHEMA = "huoke.report.tasks/1"


def _hours(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"median": None, "p90": None}
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return {"median": round(statistics.median(ordered), 2), "p90": round(p90, 2)}


def tasks_report(engine: Engine, timezone: str, scope: Scope = ALL_LEADS) -> dict[str, Any]:
    """Per queue: tasks created there (in scope's dates) and how many of those were escalated on;
    tasks that arrived by escalation; open now and overdue (past the queue's service level), done
    and their outcomes, by the queue they sit in or ended in; hours from task to first contact
    (the task done), median and 90th percentile."""
    now = engine.clock.now()
    tz = ZoneInfo(timezone)
    slas = engine.desk.slas
    queues: dict[str, dict[str, Any]] = {}
    waits: dict[str, list[float]] = defaultdict(list)
    for t in engine.index.task_facts():
        created = datetime.fromisoformat(t["created_at"])
        day = created.astimezone(tz).date()
        if (scope.since and day < scope.since) or (scope.until and day > scope.until):
            continue

        def queue(name: str) -> dict[str, Any]:
            return queues.setdefault(
                name,
                {"queue": name, "created": 0, "escalated": 0, "escalated_in": 0, "open": 0, "overdue": 0, "done": 0,
                 "outcomes": {}},
            )  # fmt: skip

        origin, q = queue(t["created_queue"]), queue(t["queue"])
        origin["created"] += 1  # where it was created
        if t["queue"] != t["created_queue"]:
            origin["escalated"] += 1  # moved on from there
            q["escalated_in"] += 1  # and arrived here
        if t["outcome"]:  # done, open and overdue: where it ended, or sits now
            q["done"] += 1
            q["outcomes"][t["outcome"]] = q["outcomes"].get(t["outcome"], 0) + 1
            done_at = datetime.fromisoformat(t["updated_at"])
            waits[t["queue"]].append((done_at - created).total_seconds() / 3600)
        else:
            q["open"] += 1
            sla = slas.get(t["queue"])
            if sla is not None and datetime.fromisoformat(t["queue_since"]) + sla <= now:
                q["overdue"] += 1
    rows = []
    for name, q in sorted(queues.items()):
        sla = slas.get(name)
        rows.append(
            {
                **q,
                "outcomes": dict(sorted(q["outcomes"].items())),
                "sla_hours": None if sla is None else sla.total_seconds() / 3600,
                "hours_to_first_contact": _hours(waits[name]),
            }
        )
    return {"schema": TASKS_SCHEMA, "scope": scope.as_dict(), "as_of": now.isoformat(), "queues": rows}
