"""Journeys: publish versions, enrol leads from lead events, advance enrolments, fire timers.

The reactor reads the Leads notification log in batches and records all resulting enrolment
events together with the position it reached, in one transaction (exactly-once).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import ProcessRecorder, Tracking
from eventsourcing.utils import get_topic

from engine.application.leads import Leads
from engine.application.ports import Clock
from engine.application.saving import save_batch
from engine.domain import interpreter
from engine.domain.enrolment import Enrolment, enrolment_id_for
from engine.domain.errors import UnknownJourneyError
from engine.domain.facts import lead_facts
from engine.domain.journey import Journey, parse_journey
from engine.domain.lead import Lead
from engine.domain.publication import PublishedJourney, published_journey_id
from engine.domain.values import JSONDict

#: Lead events the reactor reacts to (filtered in the database).
LEAD_TOPICS = [
    get_topic(cls)
    for cls in (
        Lead.Captured,
        Lead.StageChanged,
        Lead.Segmented,
        Lead.ProfileUpdated,
        Lead.ConsentWithdrawn,
    )
]


@dataclass(frozen=True)
class DueTimer:
    """A wait that falls due: the schedule row the timer view keeps."""

    enrolment_id: UUID
    step: str
    due_at: datetime


@dataclass(frozen=True)
class LiveJourney:
    """A journey's live version together with its definition."""

    version: int
    journey: Journey


class Journeys(Application[UUID]):
    """Enrolments and published journey versions."""

    snapshotting_intervals: ClassVar[dict[type[Any], int]] = {Enrolment: 50}

    def __init__(self, env: dict[str, str], clock: Clock) -> None:
        super().__init__(env)
        self.clock = clock
        self.live: dict[str, LiveJourney] = {}
        self._definitions: dict[tuple[str, int], Journey] = {}
        self._versions: dict[str, list[int]] = {}
        # Enrolment ids known not to exist. Only this reactor creates enrolments and it runs
        # sequentially (one per Journeys store), so a miss stays a miss until it creates one.
        self._absent: set[UUID] = set()

    recorder: ProcessRecorder

    def construct_recorder(self) -> ProcessRecorder:
        return self.factory.process_recorder()

    # ---- versions --------------------------------------------------------------------------

    def publish(self, journeys: Iterable[tuple[Journey, JSONDict]], templates_hash: str, author: str) -> dict[str, int]:
        """Publish each journey whose content changed; make the latest versions live."""
        aggregates = []
        for journey, raw in journeys:
            try:
                pub: PublishedJourney = self.repository.get(published_journey_id(journey.id))
            except AggregateNotFoundError:
                pub = PublishedJourney(journey_id=journey.id)
            pub.publish(journey.content_hash, raw, templates_hash, journey.source, author, self.clock.now())
            aggregates.append(pub)
            self._remember(pub)
            self.live[journey.id] = LiveJourney(pub.latest, self.definition(journey.id, pub.latest))
        save_batch(self, aggregates)
        return {jid: lj.version for jid, lj in self.live.items()}

    def _remember(self, pub: PublishedJourney) -> None:
        self._versions[pub.journey_id] = sorted(pub.versions)
        for number, raw in pub.versions.items():
            key = (pub.journey_id, number)
            if key not in self._definitions:
                self._definitions[key] = parse_journey(raw, f"{pub.journey_id} v{number}")

    def definition(self, journey_id: str, version: int) -> Journey:
        """The definition of a published version (loaded once, then cached)."""
        key = (journey_id, version)
        if key not in self._definitions:
            try:
                self._remember(self.repository.get(published_journey_id(journey_id)))
            except AggregateNotFoundError:
                raise UnknownJourneyError(f"journey {journey_id!r} was never published") from None
        if key not in self._definitions:
            raise UnknownJourneyError(f"journey {journey_id!r} has no version {version}")
        return self._definitions[key]

    # ---- reacting to lead events -----------------------------------------------------------

    def process_lead_events(self, leads: Leads, batch_size: int = 500) -> int:
        """Apply every new lead event; return how many notifications were processed."""
        done = 0
        while True:
            position = self.recorder.max_tracking_id(leads.name)
            notes = leads.recorder.select_notifications(
                start=position, limit=batch_size, topics=LEAD_TOPICS, inclusive_of_start=False
            )
            if not notes:
                return done
            touched: dict[UUID, Enrolment] = {}
            try:
                for note in notes:
                    lead_event = leads.mapper.to_domain_event(note)
                    self._react(lead_event, leads, touched)
                save_batch(self, touched.values(), Tracking(leads.name, notes[-1].id))
            except Exception:
                self.forget_cached_state()
                raise
            done += len(notes)

    def forget_cached_state(self) -> None:
        """Drop cached aggregates (after a failed batch their state may be unsaved)."""
        self._repository = self.construct_repository()
        self._absent.clear()

    def _react(self, lead_event: Any, leads: Leads, touched: dict[UUID, Enrolment]) -> None:
        lead = leads.get_lead(lead_event.originator_id)
        at = getattr(lead_event, "at", None) or getattr(lead_event, "captured_at", None) or self.clock.now()
        facts = lead_facts(lead, at)
        trigger = None
        if isinstance(lead_event, Lead.Captured):
            trigger = "lead_captured"
        elif isinstance(lead_event, Lead.StageChanged):
            trigger = f"stage:{lead_event.to_stage}"
        # A lead's first event: no enrolment can exist yet beyond this batch's own.
        first = isinstance(lead_event, Lead.Captured)
        for journey_id, live in self.live.items():
            for version in self._versions.get(journey_id, [live.version]):
                enrolment = self._find(touched, lead.id, journey_id, version, look=not first)
                if enrolment is not None and enrolment.is_active:
                    ended = interpreter.exit_check(self.definition(journey_id, version), facts)
                    if ended is not None:
                        enrolment.apply([ended], at)
            if trigger is None:
                continue
            if self._find(touched, lead.id, journey_id, live.version, look=not first) is not None:
                continue  # one enrolment per lead and version in this slice (re-entry: never)
            verdict = interpreter.check_entry(live.journey, trigger, facts)
            if verdict.accepted:
                enrolment = Enrolment(
                    lead_id=lead.id,
                    journey_id=journey_id,
                    journey_version=live.version,
                    entry_key="",
                    reason=verdict.reason,
                    at=at,
                )
                enrolment.apply(interpreter.start(live.journey, facts, at), at)
                touched[enrolment.id] = enrolment
                self._absent.discard(enrolment.id)

    def _find(
        self,
        touched: dict[UUID, Enrolment],
        lead_id: UUID,
        journey_id: str,
        version: int,
        look: bool = True,
    ) -> Enrolment | None:
        eid = enrolment_id_for(lead_id, journey_id, version)
        if eid in touched:
            return touched[eid]
        if not look:
            self._absent.add(eid)  # a brand-new lead has no enrolment outside this batch
            return None
        if eid in self._absent:
            return None
        try:
            enrolment: Enrolment = self.repository.get(eid)
        except AggregateNotFoundError:
            if len(self._absent) > 1_000_000:
                self._absent.clear()
            self._absent.add(eid)
            return None
        touched[eid] = enrolment
        return enrolment

    # ---- timers ----------------------------------------------------------------------------

    def fire_timers(self, timers: Sequence[DueTimer], leads: Leads) -> int:
        """Resume enrolments whose wait is due; a timer that already fired is a no-op."""
        fired: list[Enrolment] = []
        for timer in timers:
            try:
                enrolment: Enrolment = self.repository.get(timer.enrolment_id)
            except AggregateNotFoundError:
                continue
            if enrolment.waiting_step != timer.step or not enrolment.is_due(timer.due_at):
                continue
            journey = self.definition(enrolment.journey_id, enrolment.journey_version)
            facts = lead_facts(leads.get_lead(enrolment.lead_id), timer.due_at)
            ended = interpreter.exit_check(journey, facts)
            decisions: list[interpreter.Decision] = (
                [ended] if ended else interpreter.resume(journey, timer.step, facts, timer.due_at)
            )
            enrolment.apply(decisions, timer.due_at)
            fired.append(enrolment)
        if fired:
            try:
                save_batch(self, fired)
            except Exception:
                self.forget_cached_state()
                raise
        return len(fired)

    # ---- queries ---------------------------------------------------------------------------

    def enrolment_events(self, enrolment_id: UUID) -> list[Any]:
        """Every recorded event of one enrolment, oldest first."""
        return list(self.events.get(enrolment_id))

    def get_enrolment(self, enrolment_id: UUID) -> Enrolment | None:
        try:
            enrolment: Enrolment = self.repository.get(enrolment_id)
        except AggregateNotFoundError:
            return None
        return enrolment

    def now(self) -> datetime:
        return self.clock.now()
