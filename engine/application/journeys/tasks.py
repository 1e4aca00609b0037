"""Agent work on the tasks journeys create: claim, hand on, complete with an outcome. Each
action is an event on the task's ``AgentTask``; an ``opted_out`` outcome withdraws the lead's
marketing consent on every channel at once."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from engine.application.engine import Engine
from engine.application.journeys.desk import queue_since, task_of
from engine.domain.journeys.agent_task import AgentTask
from engine.domain.shared.errors import HuokeError
from engine.eventstore.saving import retry_conflicts, save_batch


def find_task(engine: Engine, ref: str) -> dict[str, Any]:
    """The task a full id or an unambiguous prefix of one (as ``tasks list`` shows) names."""
    ref = ref.strip().lower()
    found = [t for t in engine.index.tasks(include_done=True) if str(t["task_id"]).startswith(ref)] if ref else []
    if not found:
        raise HuokeError(f"no task {ref!r}: see huoke tasks list")
    if len(found) > 1:
        raise HuokeError(f"{ref!r} names {len(found)} tasks: give more of the id")
    return found[0]


def _act(engine: Engine, ref: str, by: str, admin: bool, action: Any) -> AgentTask:
    """Run ``action(task, now, supervisor)`` on the task as committed now; ``supervisor`` when
    ``by`` is an admin or a team lead of the task's queue (who may act on anyone's task)."""
    row = find_task(engine, ref)
    now = engine.clock.now()

    def attempt() -> AgentTask:
        task = task_of(engine.journeys, row, now)
        action(task, now, admin or engine.desk.supervises(by, task.queue))
        save_batch(engine.journeys, [task])
        return task

    return retry_conflicts(engine.journeys, attempt)


def claim_task(engine: Engine, ref: str, agent: str, admin: bool = False) -> AgentTask:
    return _act(engine, ref, agent, admin, lambda task, now, sup: task.claim(agent, now, sup))


def reassign_task(engine: Engine, ref: str, queue: str, agent: str, by: str, admin: bool = False) -> AgentTask:
    """Hand a task on; with a desk file, only to one of its queues and officers (a typo would
    strand the task where no one looks)."""
    desk = engine.desk
    if queue and desk.queues and queue not in desk.queues:
        raise HuokeError(f"no queue {queue!r} on the desk (queues: {', '.join(sorted(desk.queues))})")
    if agent and desk.officers and agent not in {o.id for o in desk.officers}:
        raise HuokeError(f"no officer {agent!r} on the desk (see queues.yaml)")
    return _act(engine, ref, by, admin, lambda task, now, sup: task.reassign(queue, agent, by, now, sup))


def complete_task(engine: Engine, ref: str, outcome: str, note: str, by: str, admin: bool = False) -> AgentTask:
    task = _act(engine, ref, by, admin, lambda task, now, sup: task.complete(outcome, note, by, now, sup))
    if outcome == "opted_out":  # said on the call: consent goes on every channel, before any send
        engine.leads.opt_out(task.lead_id, "all", "agent call", f"told {by} on a call: {note}".strip(": "))
    return task


def task_documents(engine: Engine, queue: str | None, include_done: bool) -> list[dict[str, Any]]:
    """The tasks with what a loan officer needs on the call: name, phone, language, the reason,
    scores with their reason codes, affordability, the matched offer and every product rule the
    lead fails; and how the desk handled the task (routed to whom, held why, when it is overdue)."""
    tasks = engine.index.tasks(queue, include_done)
    leads = engine.leads.current(UUID(str(t["lead_id"])) for t in tasks)  # one version query, not one read each
    out = []
    for t in tasks:
        lead = leads.get(UUID(str(t["lead_id"]))) or engine.leads.get_lead(UUID(str(t["lead_id"])))
        contact = {k: lead.contact.get(k) for k in ("name", "phone", "email", "language")}
        scores = {
            kind: {"score": s.score, "band": s.band, "reasons": s.reasons} for kind, s in sorted(lead.scores.items())
        }
        offer = lead.offer.as_dict() if lead.offer else {}
        brief = {
            "id": str(lead.id),
            **contact,
            "stage": lead.stage.value,
            "region": lead.profile.get("region"),
            "loan_type": lead.interest.get("loan_type"),
            "loan_amount": lead.interest.get("amount"),
            "scores": scores,
            "affordability": engine.leads.affordability(lead),
            "offer": {k: v for k, v in offer.items() if k != "reasons" and v},
            "refusals": offer.get("reasons", {}),
        }
        deadline = _deadline(engine, t)
        out.append({**t, "overdue_at": deadline, "lead": brief})
    return out


def _deadline(engine: Engine, task: dict[str, Any]) -> str | None:
    """When the task runs out of its queue's service level (ISO, UTC), if the queue has one."""
    queue = engine.desk.queues.get(task["queue"])
    if queue is None or queue.sla is None or task["status"] == "done":
        return None
    return (queue_since(task) + queue.sla).isoformat()


def task_summary(task: Any) -> dict[str, Any]:
    """Where a task stands after an officer's action (the API's answer)."""
    return {
        "task_id": str(task.id),
        "lead_id": str(task.lead_id),
        "queue": task.queue,
        "agent": task.agent,
        "outcome": task.outcome,
    }
