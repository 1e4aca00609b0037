"""The loan officers' desk (``queues.yaml``): the queues journeys hand tasks to, each with its
service level and where overdue tasks escalate, and the officers who work them with their
skills (licence regions, loan types, languages) and capacity (open tasks at once).

Routing is pure: given a task's queue, the lead's region, loan type and language and each
officer's open load, it names the officer who takes the task, or says why nobody can."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from engine.domain.shared.durations import parse_duration
from engine.domain.shared.errors import JourneyValidationError


@dataclass(frozen=True)
class Queue:
    """A task queue: overdue (not done within ``sla`` of arriving) tasks move to ``escalate_to``
    (or are flagged in place when it is empty)."""

    id: str
    description: str = ""
    sla: timedelta | None = None
    escalate_to: str = ""

    def deadline(self, since: datetime) -> datetime | None:
        return None if self.sla is None else since + self.sla


@dataclass(frozen=True)
class Officer:
    """A loan officer and what they may take: empty skill sets mean any."""

    id: str
    name: str
    queues: frozenset[str]
    regions: frozenset[str] = frozenset()
    loan_types: frozenset[str] = frozenset()
    languages: frozenset[str] = frozenset()
    capacity: int = 10

    def refusal(self, lead: Mapping[str, Any]) -> str:
        """Why this officer may not take the lead's task ('' when they may)."""
        region, loan_type, language = lead.get("region"), lead.get("loan_type"), lead.get("language")
        if self.regions and region not in self.regions:
            return f"{self.id} is not licensed in {region or 'an unknown region'}"
        if self.loan_types and loan_type and loan_type not in self.loan_types:
            return f"{self.id} does not handle {loan_type} loans"
        if self.languages and language and language not in self.languages:
            return f"{self.id} does not speak {language}"
        return ""

    def skills(self, lead: Mapping[str, Any]) -> str:
        shown = [
            f"licensed in {lead.get('region')}" if self.regions else "",
            f"handles {lead.get('loan_type')}" if self.loan_types and lead.get("loan_type") else "",
            f"speaks {lead.get('language')}" if self.languages and lead.get("language") else "",
        ]
        return ", ".join(s for s in shown if s) or "no skill required"


@dataclass(frozen=True)
class Desk:
    """Every queue and officer; a queue with no officers is worked by hand (``tasks claim``)."""

    queues: Mapping[str, Queue] = field(default_factory=dict)
    officers: tuple[Officer, ...] = ()

    def officers_of(self, queue: str) -> list[Officer]:
        return [o for o in self.officers if queue in o.queues]

    def route(self, queue: str, lead: Mapping[str, Any], load: Mapping[str, int]) -> tuple[Officer | None, str]:
        """The officer of ``queue`` who may take the lead and is least loaded for their capacity
        (ties: the most room left, then id), with the reason; or None and why nobody can."""
        able: list[Officer] = []
        refusals: list[str] = []
        for officer in self.officers_of(queue):
            why = officer.refusal(lead)
            if not why and load.get(officer.id, 0) >= officer.capacity:
                why = f"{officer.id} is at capacity ({load.get(officer.id, 0)} of {officer.capacity} open)"
            if why:
                refusals.append(why)
            else:
                able.append(officer)
        if not able:
            return None, "; ".join(refusals) or f"queue {queue} has no officers"
        best = min(able, key=lambda o: (load.get(o.id, 0) / o.capacity, load.get(o.id, 0) - o.capacity, o.id))
        taken = load.get(best.id, 0)
        return best, f"{best.skills(lead)}; {taken} of {best.capacity} open"

    def supervises(self, officer_id: str, queue: str) -> bool:
        """Whether ``officer_id`` is a team lead for ``queue``: an officer of a queue its overdue
        tasks escalate to (directly or further up)."""
        above, seen = self.queues[queue].escalate_to if queue in self.queues else "", {queue}
        while above and above not in seen:
            if any(o.id == officer_id and above in o.queues for o in self.officers):
                return True
            seen.add(above)
            above = self.queues[above].escalate_to if above in self.queues else ""
        return False

    @property
    def slas(self) -> dict[str, timedelta]:
        return {q.id: q.sla for q in self.queues.values() if q.sla is not None}

    @property
    def escalating_slas(self) -> dict[str, timedelta]:
        """The service levels after which a task moves on (its queue escalates to another): a
        task overdue in a queue that escalates nowhere stays where it is, overdue by the clock."""
        return {q.id: q.sla for q in self.queues.values() if q.sla is not None and q.escalate_to}


NO_DESK = Desk()


def parse_desk(data: Any, source: str = "queues.yaml") -> Desk:
    """Validate the desk file; every problem names the entry."""
    if not isinstance(data, dict):
        raise JourneyValidationError([f"{source}: expected a mapping with queues and officers"])
    problems: list[str] = []
    queues: dict[str, Queue] = {}
    for n, raw in enumerate(data.get("queues") or [], 1):
        where = f"{source}: queues[{n}]"
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str) or not raw["id"]:
            problems.append(f"{where}: expected {{id: NAME, sla: 4h, escalate_to: QUEUE}}")
            continue
        sla = None
        if raw.get("sla") is not None:
            sla = parse_duration(raw["sla"])
            if sla is None or sla <= timedelta(0):
                problems.append(f"{where}: sla: expected a duration like 4h or 1d, got {raw['sla']!r}")
                sla = None
        if raw["id"] in queues:
            problems.append(f"{where}: queue {raw['id']!r} is defined twice")
        queues[raw["id"]] = Queue(raw["id"], str(raw.get("description") or ""), sla, str(raw.get("escalate_to") or ""))
    for q in queues.values():
        if q.escalate_to and q.escalate_to not in queues:
            problems.append(f"{source}: queue {q.id}: escalate_to {q.escalate_to!r} is not a queue here")
        if q.escalate_to == q.id:
            problems.append(f"{source}: queue {q.id}: escalates to itself")
    officers: list[Officer] = []
    for n, raw in enumerate(data.get("officers") or [], 1):
        where = f"{source}: officers[{n}]"
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str) or not raw["id"]:
            problems.append(f"{where}: expected {{id, name, queues: [..], regions, loan_types, languages, capacity}}")
            continue
        capacity = raw.get("capacity", 10)
        if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 1:
            problems.append(f"{where}: capacity: expected a whole number of open tasks (1 or more), got {capacity!r}")
            capacity = 1
        sets = {}
        for key in ("queues", "regions", "loan_types", "languages"):
            value = raw.get(key) or []
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                problems.append(f"{where}: {key}: expected a list of names")
                value = []
            sets[key] = frozenset(value)
        unknown = sorted(sets["queues"] - set(queues))
        if unknown or not sets["queues"]:
            problems.append(f"{where}: queues: {unknown or 'none given'} (the queues are {', '.join(sorted(queues))})")
        if any(o.id == raw["id"] for o in officers):
            problems.append(f"{where}: officer {raw['id']!r} is listed twice")
        officers.append(Officer(raw["id"], str(raw.get("name") or raw["id"]), capacity=capacity, **sets))
    if problems:
        raise JourneyValidationError(problems)
    return Desk(queues, tuple(officers))
