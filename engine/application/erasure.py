"""Erasure as one use case: the person's data key is shredded and everything huoke still had
planned for them stops at once — enrolments end, pending messages are cancelled and open agent
tasks close, each with the reason "erased" (the reactors would get there too when they read the
erasure, but an erased person must not wait for a worker's next tick)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from engine.application.delivery.base import ERASED_REFUSAL
from engine.application.engine import Engine
from engine.application.journeys.desk import tasks_of
from engine.domain.journeys.enrolment import Enrolment, send_id_for
from engine.domain.journeys.journey import SendStep
from engine.domain.leads.lead import Lead
from engine.domain.leads.privacy import RETAINED
from engine.eventstore.saving import retry_conflicts, save_batch


@dataclass(frozen=True)
class Erasure:
    """What an erasure did."""

    lead: Lead
    enrolments_ended: int
    messages_cancelled: int
    tasks_closed: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "schema": "huoke.erasure/1",
            "lead_id": str(self.lead.id),
            "erased": True,
            "enrolments_ended": self.enrolments_ended,
            "messages_cancelled": self.messages_cancelled,
            "tasks_closed": self.tasks_closed,
            "retained": list(RETAINED),
        }


def erase_lead(engine: Engine, lead_id: UUID, reason: str, by: str) -> Erasure:
    lead = engine.leads.erase(lead_id, reason, by)
    ended = engine.journeys.end_for_erasure(lead_id)
    cancelled = engine.deliveries.cancel_unsent(_send_ids(engine, ended), ERASED_REFUSAL)
    return Erasure(lead, len(ended), cancelled, _close_tasks(engine, lead_id, by))


def _send_ids(engine: Engine, enrolments: list[Enrolment]) -> list[UUID]:
    """Every message these enrolments requested (ids derive from enrolment, step and visit)."""
    ids = []
    for enrolment in enrolments:
        steps = engine.journeys.definition(enrolment.journey_id, enrolment.journey_version).steps
        for step, visits in enrolment.visits.items():
            if isinstance(steps.get(step), SendStep):
                ids += [send_id_for(enrolment.id, step, n) for n in range(1, visits + 1)]
    return ids


def _close_tasks(engine: Engine, lead_id: UUID, by: str) -> int:
    rows = [t for t in engine.index.tasks() if str(t["lead_id"]) == str(lead_id) and t["status"] != "done"]

    def close() -> int:
        now = engine.clock.now()
        tasks = tasks_of(engine.journeys, rows, now)
        for task in tasks:
            task.close_for_erasure(by, now)
        save_batch(engine.journeys, tasks)
        return len(tasks)

    return retry_conflicts(engine.journeys, close) if rows else 0
