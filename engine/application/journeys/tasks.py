"""Agent work on the tasks journeys create: claim, hand on, complete with an outcome. Each
action is an event on the task's ``AgentTask``; an ``opted_out`` outcome withdraws the lead's
marketing consent on every channel at once."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from engine.application.engine import Engine
from engine.application.saving import fresh_get, retry_conflicts, save_batch
from engine.domain.journeys.agent_task import AgentTask
from engine.domain.shared.errors import HuokeError


def find_task(engine: Engine, ref: str) -> dict[str, Any]:
    """The task a full id or an unambiguous prefix of one (as ``tasks list`` shows) names."""
    ref = ref.strip().lower()
    found = [t for t in engine.index.tasks(include_done=True) if str(t["task_id"]).startswith(ref)] if ref else []
    if not found:
        raise HuokeError(f"no task {ref!r}: see huoke tasks list")
    if len(found) > 1:
        raise HuokeError(f"{ref!r} names {len(found)} tasks: give more of the id")
    return found[0]


def _act(engine: Engine, ref: str, action: Any) -> AgentTask:
    row = find_task(engine, ref)
    task_id, now = UUID(str(row["task_id"])), engine.clock.now()

    def attempt() -> AgentTask:
        try:
            task: AgentTask = fresh_get(engine.journeys, task_id)
        except AggregateNotFoundError:
            task = AgentTask(task_id=task_id, lead_id=UUID(str(row["lead_id"])), queue=row["queue"], at=now)
        action(task, now)
        save_batch(engine.journeys, [task])
        return task

    return retry_conflicts(engine.journeys, attempt)


def claim_task(engine: Engine, ref: str, agent: str) -> AgentTask:
    return _act(engine, ref, lambda task, now: task.claim(agent, now))


def reassign_task(engine: Engine, ref: str, queue: str, agent: str, by: str) -> AgentTask:
    return _act(engine, ref, lambda task, now: task.reassign(queue, agent, by, now))


def complete_task(engine: Engine, ref: str, outcome: str, note: str, by: str) -> AgentTask:
    task = _act(engine, ref, lambda task, now: task.complete(outcome, note, by, now))
    if outcome == "opted_out":  # said on the call: consent goes on every channel, before any send
        engine.leads.opt_out(task.lead_id, "all", "agent call", f"told {by} on a call: {note}".strip(": "))
    return task


def task_documents(engine: Engine, queue: str | None, include_done: bool) -> list[dict[str, Any]]:
    """The tasks with what a loan officer needs on the call: name, phone, language, the reason."""
    tasks = engine.index.tasks(queue, include_done)
    leads = engine.leads.current(UUID(str(t["lead_id"])) for t in tasks)  # one version query, not one read each
    out = []
    for t in tasks:
        lead = leads.get(UUID(str(t["lead_id"]))) or engine.leads.get_lead(UUID(str(t["lead_id"])))
        contact = {k: lead.contact.get(k) for k in ("name", "phone", "email", "language")}
        out.append({**t, "lead": {"id": str(lead.id), **contact, "stage": lead.stage.value}})
    return out
