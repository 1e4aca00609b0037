"""One lead's journey history — entries, exits and refusals — for entry rules and the why-trail.

``JourneyHistory`` answers, without scanning the store: which enrolments of this lead are
active, how often the lead entered a journey (per entry key), when it last left (cool-down).
The journeys store keeps its entries and exits as claims written with the enrolments' own
events (``Started``, ``Exited``), so an entry number is taken once, as a version would be.
``EntryRefusals`` keeps, for each lead event that had any, the journeys it did not enter the
lead into and why, for `huoke leads show`: its id derives from the lead event, so recording one
reads nothing. Stores from before kept a ``LeadJourneys`` aggregate per lead (entries, exits
and refusals as its events): ``db init`` indexes its entries and exits once, and its refusals
are still read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple
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
    if isinstance(e, LeadJourneys.EntriesRefused | EntryRefusals.Recorded):
        return [Refusal(r["journey_id"], int(r["version"]), r["trigger"], r["reason"]) for r in e.refusals]
    if isinstance(e, LeadJourneys.Refused):
        return [Refusal(e.journey_id, e.version, e.trigger, e.reason)]
    return []


def _slot(journey_id: str, key: str) -> str:
    return f"{journey_id}\x1f{key}"


class EntryOrExit(NamedTuple):
    """An entry into a journey (``number`` from 1) or, with ``left`` set, an exit from it."""

    enrolment_id: UUID
    journey_id: str
    entry_key: str
    number: int
    at: datetime
    left: bool = False
    reason: str = ""


@dataclass
class JourneyHistory:
    """A lead's entries and exits as stored, then those recorded since (``recorded``), which are
    stored with the events of the batch that made them."""

    lead_id: UUID
    active: dict[UUID, tuple[str, str]] = field(default_factory=dict)
    entries: dict[str, int] = field(default_factory=dict)
    last_exit: dict[str, datetime] = field(default_factory=dict)
    recorded: list[EntryOrExit] = field(default_factory=list)
    _slots: dict[UUID, tuple[str, str]] = field(default_factory=dict)

    def admission(self, journey_id: str, key: str, reentry: str, cooldown: timedelta, now: datetime) -> Admission:
        """The re-entry policy and cool-down for one more entry into ``journey_id``/``key``."""
        slot = _slot(journey_id, key)
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
        self.recorded.append(EntryOrExit(enrolment_id, journey_id, key, number, at))
        self.load(self.recorded[-1])

    def leave(self, enrolment_id: UUID, reason: str, at: datetime) -> None:
        if enrolment_id in self.active:
            journey_id, key = self.active[enrolment_id]
            self.recorded.append(EntryOrExit(enrolment_id, journey_id, key, 0, at, left=True, reason=reason))
            self.load(self.recorded[-1])

    def load(self, e: EntryOrExit) -> None:
        """Apply one stored (or just recorded) entry or exit; an exit's journey is its entry's."""
        if not e.left:
            self.active[e.enrolment_id] = self._slots[e.enrolment_id] = (e.journey_id, e.entry_key)
            slot = _slot(e.journey_id, e.entry_key)
            self.entries[slot] = max(self.entries.get(slot, 0), e.number)
            return
        self.active.pop(e.enrolment_id, None)
        journey_id, key = self._slots.get(e.enrolment_id, (e.journey_id, e.entry_key))
        slot = _slot(journey_id, key)
        self.last_exit[slot] = max(self.last_exit.get(slot, e.at), e.at)

    def take_recorded(self) -> list[EntryOrExit]:
        """The entries and exits recorded since the history was read (now counted as stored)."""
        taken, self.recorded = self.recorded, []
        return taken


def entry_refusals_id(lead_id: UUID, lead_version: int) -> UUID:
    return derive_id("entry-refusals", lead_id, lead_version)


class EntryRefusals(Aggregate):
    """The journeys one lead event (the lead's ``lead_version``) did not enter the lead into,
    each with its trigger and why (``journey_id``, ``version``, ``trigger``, ``reason``)."""

    class Recorded(Aggregate.Created):
        lead_id: UUID
        lead_version: int
        refusals: list[dict[str, Any]]
        at: datetime

    @event(Recorded)
    def __init__(self, lead_id: UUID, lead_version: int, refusals: list[dict[str, Any]], at: datetime) -> None:
        self.lead_id = lead_id

    @staticmethod
    def create_id(lead_id: UUID, lead_version: int, **_: Any) -> UUID:
        return entry_refusals_id(lead_id, lead_version)


class LeadJourneys(Aggregate):
    """The journey history of one lead, as stores before ``JourneyHistory`` and
    ``EntryRefusals`` kept it (read by the migration and for its refusals; nothing writes it)."""

    class Opened(Aggregate.Created):
        lead_id: UUID

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
    def __init__(self, lead_id: UUID) -> None:
        self.lead_id = lead_id
        self.active: dict[UUID, tuple[str, str]] = {}
        self.entries: dict[str, int] = {}
        self.last_exit: dict[str, datetime] = {}

    @staticmethod
    def create_id(lead_id: UUID, **_: Any) -> UUID:
        return lead_journeys_id(lead_id)

    @event(Entered)
    def _entered(self, enrolment_id: UUID, journey_id: str, entry_key: str, entry_number: int, at: datetime) -> None:
        self.active[enrolment_id] = (journey_id, entry_key)
        slot = _slot(journey_id, entry_key)
        self.entries[slot] = max(self.entries.get(slot, 0), entry_number)

    @event(Refused)
    def _refused(self, journey_id: str, version: int, trigger: str, reason: str, at: datetime) -> None:
        pass

    @event(EntriesRefused)
    def _entries_refused(self, refusals: list[dict[str, Any]], at: datetime) -> None:
        pass

    @event(Left)
    def _left(self, enrolment_id: UUID, reason: str, at: datetime) -> None:
        journey_id, key = self.active.pop(enrolment_id)
        self.last_exit[_slot(journey_id, key)] = at


keep_topics("engine.domain.lead_journeys", LeadJourneys, EntryRefusals)
