"""LeadJourneys: one lead's journey history — entries, refusals and exits — for entry rules.

It answers, without scanning the store: which enrolments of this lead are active, how often
the lead entered a journey (per entry key), when it last left (cool-down), and keeps every
refused entry with its reason for `huoke leads show`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from engine.domain.shared.durations import utc_text
from engine.domain.shared.topics import keep_topics
from engine.domain.shared.values import derive_id


def lead_journeys_id(lead_id: UUID) -> UUID:
    return derive_id("lead-journeys", lead_id)


@dataclass(frozen=True)
class Admission:
    """Whether another entry is allowed, why, and the entry number it would get."""

    allowed: bool
    reason: str
    entry_number: int


@dataclass(frozen=True)
class Refusal:
    """A journey that did not take the lead, on which trigger, and why."""

    journey_id: str
    version: int
    trigger: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"journey_id": self.journey_id, "version": self.version, "trigger": self.trigger, "reason": self.reason}


def refusals_in(e: Any) -> list[Refusal]:
    """The refusals an event of a lead's journey history records (none for other events)."""
    if isinstance(e, LeadJourneys.EntriesRefused | LeadJourneys.Opened):
        return [Refusal(r["journey_id"], int(r["version"]), r["trigger"], r["reason"]) for r in e.refusals or ()]
    if isinstance(e, LeadJourneys.Refused):
        return [Refusal(e.journey_id, e.version, e.trigger, e.reason)]
    return []


class LeadJourneys(Aggregate):
    """The journey history of one lead."""

    class Opened(Aggregate.Created):
        """v2 records the refusals of the lead's first event, with their time (almost every
        lead is refused by some journey at capture): one event where there were two."""

        class_version = 2
        lead_id: UUID
        refusals: list[dict[str, Any]]
        at: datetime | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["refusals"], state["at"] = [], None

    class Entered(Aggregate.Event):
        enrolment_id: UUID
        journey_id: str
        entry_key: str
        entry_number: int
        at: datetime

    class Refused(Aggregate.Event):
        """One journey that did not take the lead (stores before ``EntriesRefused``)."""

        journey_id: str
        version: int
        trigger: str
        reason: str
        at: datetime

    class EntriesRefused(Aggregate.Event):
        """Every journey one lead event did not enter the lead into, each with its trigger and
        why (``journey_id``, ``version``, ``trigger``, ``reason``): one event for all of them,
        since most journeys' entry filters refuse most captured leads."""

        refusals: list[dict[str, Any]]
        at: datetime

    class Left(Aggregate.Event):
        enrolment_id: UUID
        reason: str
        at: datetime

    @event(Opened)
    def __init__(self, lead_id: UUID, refusals: list[dict[str, Any]] | None = None, at: datetime | None = None) -> None:
        self.lead_id = lead_id
        self.active: dict[UUID, tuple[str, str]] = {}
        self.entries: dict[str, int] = {}
        self.last_exit: dict[str, datetime] = {}

    @staticmethod
    def create_id(lead_id: UUID, **_: Any) -> UUID:
        return lead_journeys_id(lead_id)

    def admission(self, journey_id: str, key: str, reentry: str, cooldown: timedelta, now: datetime) -> Admission:
        """Apply the re-entry policy and cool-down for one more entry into ``journey_id``/``key``."""
        slot = f"{journey_id}\x1f{key}"
        count = self.entries.get(slot, 0)
        running = any(v == (journey_id, key) for v in self.active.values())
        if count and reentry == "never":
            return Admission(False, "already entered this journey once (re-entry: never)", count + 1)
        if running and reentry != "always":
            return Admission(False, "still in this journey", count + 1)
        left = self.last_exit.get(slot)
        if left is not None and cooldown and now - left < cooldown:
            until = left + cooldown
            return Admission(False, f"cool-down after leaving until {utc_text(until)}", count + 1)
        return Admission(True, "", count + 1)

    def enter(self, enrolment_id: UUID, journey_id: str, key: str, number: int, at: datetime) -> None:
        self._entered(enrolment_id=enrolment_id, journey_id=journey_id, entry_key=key, entry_number=number, at=at)

    @event(Entered)
    def _entered(self, enrolment_id: UUID, journey_id: str, entry_key: str, entry_number: int, at: datetime) -> None:
        self.active[enrolment_id] = (journey_id, entry_key)
        slot = f"{journey_id}\x1f{entry_key}"
        self.entries[slot] = max(self.entries.get(slot, 0), entry_number)

    def refuse(self, refusals: list[Refusal], at: datetime) -> None:
        """Record the journeys one lead event did not enter the lead into (nothing if none)."""
        if refusals:
            self._entries_refused(refusals=[r.as_dict() for r in refusals], at=at)

    def opened_with(self, refusals: list[Refusal], at: datetime) -> LeadJourneys:
        """This history, new and not saved yet, opened again so that its ``Opened`` records
        the refusals of its lead's first event, with what happened to it since (entries, exits)."""
        pending = self.collect_events()
        if self.version != len(pending):
            raise ValueError("only a history that was never saved can be opened again")
        opened = LeadJourneys(self.lead_id, [r.as_dict() for r in refusals], at)
        for e in pending[1:]:
            if isinstance(e, LeadJourneys.Entered):
                opened.enter(e.enrolment_id, e.journey_id, e.entry_key, e.entry_number, e.at)
            elif isinstance(e, LeadJourneys.Left):
                opened.leave(e.enrolment_id, e.reason, e.at)
            else:
                raise ValueError(f"cannot open a history again after {type(e).__name__}")
        return opened

    @event(Refused)
    def _refused(self, journey_id: str, version: int, trigger: str, reason: str, at: datetime) -> None:
        pass

    @event(EntriesRefused)
    def _entries_refused(self, refusals: list[dict[str, Any]], at: datetime) -> None:
        pass

    def leave(self, enrolment_id: UUID, reason: str, at: datetime) -> None:
        if enrolment_id in self.active:
            self._left(enrolment_id=enrolment_id, reason=reason, at=at)

    @event(Left)
    def _left(self, enrolment_id: UUID, reason: str, at: datetime) -> None:
        journey_id, key = self.active.pop(enrolment_id)
        self.last_exit[f"{journey_id}\x1f{key}"] = at


keep_topics("engine.domain.lead_journeys", LeadJourneys)
