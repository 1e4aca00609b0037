"""Journeys: enrol leads from lead events, advance enrolments, fire timers — exactly once.

The reactor reads the Leads notification log in batches and records all resulting events
(enrolments, each lead's journey history, entry counts) together with the position it reached,
in one transaction.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any, ClassVar
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.utils import get_topic

from engine.application.journeys.live import LiveJourney, LiveVersions
from engine.application.journeys.triggers import LEAD_TOPICS, LIFECYCLE, entry_triggers
from engine.application.leads.app import Leads
from engine.application.partitions import ALL, Partitions, Stop, never
from engine.application.ports import Clock, DueTimer, PiiVault
from engine.application.projecting import drain, next_owned_page
from engine.domain.journeys import interpreter
from engine.domain.journeys.agent_task import AgentTask
from engine.domain.journeys.decisions import Context, Decision, Exit, Observed
from engine.domain.journeys.enrolment import PII_FIELDS as ENROLMENT_PII
from engine.domain.journeys.enrolment import Enrolment
from engine.domain.journeys.interpreter import Entry, Reaction, click_key
from engine.domain.journeys.journey import LINK_CLICKED, Journey
from engine.domain.journeys.lead_journeys import (
    EntryOrExit,
    EntryRefusals,
    JourneyHistory,
    LeadJourneys,
    Refusal,
    entry_refusals_id,
    lead_journeys_id,
)
from engine.domain.journeys.publication import PublishedJourney
from engine.domain.leads.facts import lead_facts
from engine.domain.leads.lead import Lead
from engine.domain.shared.values import JourneyStatus
from engine.eventstore import Claim, Mapper, ProcessRecorder, Tracking
from engine.eventstore.saving import (
    add_claims,
    forget_cache,
    latest_versions,
    owned_claims,
    retry_conflicts,
    save_batch,
    sealing_mapper,
    warm_cache,
)
from engine.eventstore.values import StoreApplication

#: Why an erased person's enrolments end (and their waits and pending messages with them).
ERASED = Exit("erased", "the person asked to be erased: no further messages, tasks or waits")


@dataclass
class Batch:
    """Aggregates touched while processing one batch; saved together."""

    enrolments: dict[UUID, Enrolment] = field(default_factory=dict)
    histories: dict[UUID, JourneyHistory] = field(default_factory=dict)  # by lead
    refusals: list[EntryRefusals] = field(default_factory=list)
    publications: dict[str, PublishedJourney] = field(default_factory=dict)
    new_entries: dict[str, int] = field(default_factory=dict)
    leads: dict[UUID, Lead] = field(default_factory=dict)  # read as committed, once per batch

    def aggregates(self) -> Iterable[Any]:
        yield from self.enrolments.values()
        yield from self.refusals
        yield from self.publications.values()

    def claims(self) -> list[Claim]:
        """The entries and exits recorded in the leads' histories, to be stored with the events."""
        return history_claims(self.histories.values())


class Journeys(LiveVersions, StoreApplication):
    """Enrolments, each lead's journey history, and published journey versions."""

    snapshotting_intervals: ClassVar[dict[type[Any], int]] = {Enrolment: 50}
    recorder: ProcessRecorder

    def __init__(
        self,
        env: dict[str, str],
        clock: Clock,
        default_tz: str = "Asia/Shanghai",
        stale_after: timedelta = timedelta(hours=24),
        vault: PiiVault | None = None,
    ) -> None:
        self.vault = vault  # before the application builds its mapper
        super().__init__(env)
        self.clock = clock
        self.stale_after = stale_after
        self.default_tz = ZoneInfo(default_tz)
        self.live: dict[str, LiveJourney] = {}
        self._definitions: dict[tuple[str, int], Journey] = {}
        self._publications_seen = 0
        self._publication_versions: dict[UUID, int] = {}  # as last made live

    def construct_recorder(self) -> ProcessRecorder:
        return self.factory.process_recorder()

    def construct_mapper(self) -> Mapper[UUID]:
        """Branch values are sealed with the lead's own key when a vault is configured."""
        return sealing_mapper(super().construct_mapper(), self.vault, ENROLMENT_PII, owner="lead_id")

    def finished(self, aggregate: Any) -> bool:
        """A lead event's refusals are written once; an enrolment that exited and a task that is
        done are only read again to be shown."""
        if isinstance(aggregate, Enrolment):
            return not aggregate.is_active
        if isinstance(aggregate, AgentTask):
            return aggregate.done
        return isinstance(aggregate, EntryRefusals)

    # ---- reacting to lead events -----------------------------------------------------------

    def process_lead_events(
        self,
        leads: Leads,
        parts: Partitions = ALL,
        batch_size: int = 500,
        stop: Stop = never,
        before: datetime | None = None,
    ) -> int:
        """Apply every new lead event of the owned partitions (or pages until ``stop()``; with
        ``before``, up to the first event after that moment); return how many were processed."""
        return drain(
            lambda: retry_conflicts(
                self, lambda: self._react_page(leads, parts, batch_size, before), self.forget_cached_state
            ),
            stop,
        )

    def _react_page(self, leads: Leads, parts: Partitions, batch_size: int, before: datetime | None) -> int | None:
        # Sealed fields shut: the journeys read a lead event for its triggers, times and ids; the
        # person's facts come from the lead itself (batch.leads).
        page = next_owned_page(self.recorder, leads, LEAD_TOPICS, parts, batch_size, before=before, personal=False)
        if page is None:
            return None
        batch = Batch(leads=leads.current(e.originator_id for e in page.events))
        self._load_histories({e.originator_id for e in page.events}, batch)
        warm_cache(self, (eid for history in batch.histories.values() for eid in history.active))
        for event in page.events:
            self._react(event, leads, batch)
        self._count_entries(batch)
        self.record(batch, page.trackings)
        return len(page.events)

    def forget_cached_state(self) -> None:
        """Drop cached aggregates (after a failed batch their state may be unsaved)."""
        forget_cache(self)
        self.go_live(list(self.live))

    def _react(self, lead_event: Any, leads: Leads, batch: Batch) -> None:
        lead = batch.leads.get(lead_event.originator_id) or leads.get_lead(lead_event.originator_id)
        at = getattr(lead_event, "at", None) or getattr(lead_event, "captured_at", None) or self.clock.now()
        if lead.erased:  # a normal state: the person's journeys end, nothing new starts
            self._end_for_erasure(lead.id, batch, at)
            return
        facts = lead_facts(lead, at)
        history = self.history_in(batch, lead.id)
        observed = None
        if type(lead_event) in LIFECYCLE:
            observed = Observed(LIFECYCLE[type(lead_event)], lead_event.application_id, at)
        elif isinstance(lead_event, Lead.LinkClicked):
            key = click_key(lead_event.journey_id, lead_event.step, lead_event.template)
            observed = Observed(LINK_CLICKED, key, at)
        for eid in list(history.active):
            enrolment = self._enrolment(batch, eid)
            journey = self.definition(enrolment.journey_id, enrolment.journey_version)
            ctx = self.context(enrolment, journey, lead.id, facts, at)
            waiting = enrolment.waiting_step if enrolment.waiting_kind == "event" else None
            reacted = interpreter.react(journey, waiting or None, ctx, observed)
            if reacted.reaction is Reaction.OBSERVED and observed is not None:
                enrolment.observe(observed)
            self.advance(enrolment, reacted.decisions, at, history)
        refused: list[Refusal] = []
        for trigger, key in entry_triggers(lead_event):
            for live in self.live.values():
                if (refusal := self._maybe_enter(live, trigger, key, lead.id, facts, at, history, batch)) is not None:
                    refused.append(refusal)
        if refused:
            batch.refusals.append(
                EntryRefusals(lead.id, lead_event.originator_version, [r.as_dict() for r in refused], at)
            )

    def _end_for_erasure(self, lead_id: UUID, batch: Batch, at: datetime) -> None:
        history = self.history_in(batch, lead_id)
        for eid in list(history.active):
            self.advance(self._enrolment(batch, eid), [ERASED], at, history)
        if self.vault is not None:
            self.vault.forget(lead_id)  # this process holds no key of the person from now on

    def _maybe_enter(
        self,
        live: LiveJourney,
        trigger: str,
        key: str,
        lead_id: UUID,
        facts: dict[str, Any],
        at: datetime,
        history: JourneyHistory,
        batch: Batch,
    ) -> Refusal | None:
        """Enter the lead into ``live`` if ``trigger`` and its rules say so; the refusal if not
        (the caller records them together)."""
        journey = live.journey
        if trigger != live.trigger:
            return None  # not this journey's entry trigger: nothing to decide or record
        key = key if journey.entry.key else ""
        admission = history.admission(journey.id, key, journey.entry.reentry, journey.entry.cooldown, at)
        entries = self._entries(batch, journey.id) if journey.entry.cap is not None else None
        verdict = interpreter.decide_entry(
            journey, trigger, facts, live.status, (admission.allowed, admission.reason), entries
        )
        if verdict.entry is Entry.NOT_TRIGGERED:
            return None
        if verdict.entry is Entry.REFUSED:
            return Refusal(journey.id, live.version, trigger, verdict.reason)
        enrolment = Enrolment(
            lead_id=lead_id,
            journey_id=journey.id,
            journey_version=live.version,
            entry_key=key,
            entry_number=admission.entry_number,
            reason=verdict.reason,
            at=at,
        )
        history.enter(enrolment.id, journey.id, key, admission.entry_number, at)
        batch.enrolments[enrolment.id] = enrolment
        batch.new_entries[journey.id] = batch.new_entries.get(journey.id, 0) + 1
        ctx = self.context(enrolment, journey, lead_id, facts, at)
        self.advance(enrolment, interpreter.start(journey, ctx), at, history)
        return None

    def _entries(self, batch: Batch, journey_id: str) -> int:
        pub = batch.publications.get(journey_id) or self.publication(journey_id)
        if pub is not None:
            batch.publications[journey_id] = pub
        return (pub.entries if pub else 0) + batch.new_entries.get(journey_id, 0)

    def _count_entries(self, batch: Batch) -> None:
        """Entries are counted on the publication only where a journey caps them (a count every
        worker would update otherwise makes them conflict; reports count entries from the index)."""
        for journey_id, added in batch.new_entries.items():
            live = self.live.get(journey_id)
            if live is None or live.journey.entry.cap is None:
                continue
            pub = batch.publications.get(journey_id) or self.publication(journey_id)
            if pub is not None:
                pub.count_entries(added, self.clock.now())
                batch.publications[journey_id] = pub

    def advance(self, enrolment: Enrolment, decisions: list[Decision], at: datetime, history: JourneyHistory) -> None:
        enrolment.apply(decisions, at)
        if not enrolment.is_active:
            history.leave(enrolment.id, enrolment.exit_reason or "", at)

    def context(
        self,
        enrolment: Enrolment,
        journey: Journey,
        lead_id: UUID,
        facts: dict[str, Any],
        now: datetime,
        stale: bool = False,
    ) -> Context:
        return Context(
            lead_id=str(lead_id),
            journey_id=journey.id,
            facts=facts,
            now=now,
            tz=self._tz(facts),
            entered_at=enrolment.started_at,
            entry_key=enrolment.entry_key,
            observed=tuple(enrolment.observed),
            stale=stale,
            sent_templates=frozenset(enrolment.sent_templates),
        )

    def _tz(self, facts: dict[str, Any]) -> tzinfo:
        try:
            return ZoneInfo(facts["timezone"]) if facts.get("timezone") else self.default_tz
        except (ZoneInfoNotFoundError, ValueError):
            return self.default_tz

    def history_in(self, batch: Batch, lead_id: UUID) -> JourneyHistory:
        """The lead's journey history as ``batch`` has it (read on first use)."""
        if lead_id not in batch.histories:
            self._load_histories({lead_id}, batch)
        return batch.histories[lead_id]

    def _load_histories(self, lead_ids: set[UUID], batch: Batch) -> None:
        """The journey histories of a batch's leads as committed now, in one query (the store's
        claims of each lead's entries and exits)."""
        wanted = [lead for lead in lead_ids if lead not in batch.histories]
        batch.histories.update(histories_from(owned_claims(self, [journeys_of(lead) for lead in wanted]), wanted))

    def record(self, batch: Batch, trackings: Sequence[Tracking] = ()) -> None:
        """Store what ``batch`` changed (events and claims) in one transaction."""
        save_batch(self, batch.aggregates(), trackings, batch.claims())

    def history_of(self, lead_id: UUID) -> JourneyHistory:
        """A lead's journey history as committed now (outside a reactor batch)."""
        return self.history_in(Batch(), lead_id)

    def migrate_histories(self) -> int:
        """Index the entries and exits a store from before kept as ``LeadJourneys`` events (one
        aggregate per lead); the number added. Idempotent."""
        topics = [get_topic(c) for c in (LeadJourneys.Opened, LeadJourneys.Entered, LeadJourneys.Left)]
        lead_of: dict[UUID, UUID] = {}
        added, start = 0, 1
        while page := self.recorder.select_notifications(start, 1000, topics=topics):
            recorded: dict[UUID, JourneyHistory] = {}
            for note in page:
                e = self.mapper.to_domain_event(note)
                if isinstance(e, LeadJourneys.Opened):
                    lead_of[e.originator_id] = e.lead_id
                    continue
                lead = lead_of[e.originator_id]
                h = recorded.setdefault(lead, JourneyHistory(lead))
                if isinstance(e, LeadJourneys.Entered):
                    h.recorded.append(EntryOrExit(e.enrolment_id, e.journey_id, e.entry_key, e.entry_number, e.at))
                else:
                    h.recorded.append(EntryOrExit(e.enrolment_id, "", "", 0, e.at, left=True, reason=e.reason))  # type: ignore[attr-defined]
            added += add_claims(self, history_claims(recorded.values()))
            start = page[-1].id + 1
        return added

    def _enrolment(self, batch: Batch, eid: UUID) -> Enrolment:
        if eid not in batch.enrolments:
            batch.enrolments[eid] = self.repository.get(eid)
        return batch.enrolments[eid]

    # ---- timers ----------------------------------------------------------------------------

    def fire_timers(self, timers: Sequence[DueTimer], leads: Leads) -> int:
        """Resume enrolments whose wait is due; a timer that already fired is a no-op."""
        return retry_conflicts(self, lambda: self._fire_batch(timers, leads), self.forget_cached_state)

    def _fire_batch(self, timers: Sequence[DueTimer], leads: Leads) -> int:
        due: list[tuple[DueTimer, Enrolment]] = []
        warm_cache(self, (timer.enrolment_id for timer in timers))
        for timer in timers:
            enrolment = self.get_enrolment(timer.enrolment_id)
            if enrolment is None or enrolment.waiting_step != timer.step or not enrolment.is_due(timer.due_at):
                continue
            live = self.live.get(enrolment.journey_id)
            if live is not None and live.status == JourneyStatus.PAUSED:
                continue
            due.append((timer, enrolment))
        batch = Batch(leads=leads.current(e.lead_id for _, e in due))
        self._load_histories({e.lead_id for _, e in due}, batch)
        for timer, enrolment in due:
            batch.enrolments[enrolment.id] = enrolment
            self._fire(enrolment, timer, leads, batch)
        fired = len(due)
        self.record(batch)
        return fired

    def _fire(self, enrolment: Enrolment, timer: DueTimer, leads: Leads, batch: Batch) -> None:
        journey = self.definition(enrolment.journey_id, enrolment.journey_version)
        lead = batch.leads.get(enrolment.lead_id) or leads.get_lead(enrolment.lead_id)
        history = self.history_in(batch, lead.id)
        if lead.erased:
            self.advance(enrolment, [ERASED], max(timer.due_at, self.clock.now()), history)
            return
        facts = lead_facts(lead, timer.due_at)
        live = self.live.get(journey.id)
        pub = live.publication if live is not None else self.publication(journey.id)
        # A timer that fires long after it fell due (the journey was paused, or no worker ran)
        # follows each send step's stale policy: never a flood of old follow-ups.
        late = self.clock.now() - timer.due_at > self.stale_after
        stale = late or (pub is not None and pub.fell_due_while_paused(timer.due_at))
        now = max(timer.due_at, self.clock.now()) if stale else timer.due_at
        ctx = self.context(enrolment, journey, lead.id, facts, now, stale=stale)
        self.advance(enrolment, interpreter.on_timer(journey, timer.step, ctx), now, history)

    # ---- operations on live enrolments -----------------------------------------------------

    def end_for_erasure(self, lead_id: UUID) -> list[Enrolment]:
        """End every active enrolment of an erased person at once (the reactor would, when it
        reads the erasure); the enrolments ended, for their pending messages to be cancelled."""

        def end() -> list[Enrolment]:
            batch = Batch()
            history = self.history_in(batch, lead_id)
            active = [self._enrolment(batch, eid) for eid in history.active]
            self._end_for_erasure(lead_id, batch, self.clock.now())
            self.record(batch)
            return active

        return retry_conflicts(self, end, self.forget_cached_state)

    def exit_all(self, enrolment_ids: Iterable[UUID], reason: str, detail: str) -> int:
        """End enrolments (e.g. when a journey is archived); retried when a worker wrote one of
        them meanwhile."""
        ids = list(enrolment_ids)

        def end() -> int:
            batch = Batch()
            now = self.clock.now()
            for eid in ids:
                enrolment = self.get_enrolment(eid)
                if enrolment is None or not enrolment.is_active:
                    continue
                batch.enrolments[eid] = enrolment
                self.advance(enrolment, [Exit(reason, detail)], now, self.history_in(batch, enrolment.lead_id))
            self.record(batch)
            return len(batch.enrolments)

        return retry_conflicts(self, end, self.forget_cached_state)

    # ---- queries ---------------------------------------------------------------------------

    def lead_of_enrolment(self, enrolment_id: UUID) -> UUID:
        """The lead an enrolment belongs to (events stored before they named it)."""
        enrolment = self.get_enrolment(enrolment_id)
        if enrolment is None:
            raise LookupError(f"enrolment {enrolment_id} vanished")
        return enrolment.lead_id

    def enrolment_events(self, enrolment_id: UUID) -> list[Any]:
        """Every recorded event of one enrolment, oldest first."""
        return list(self.events.get(enrolment_id))

    def history_events(self, lead_id: UUID, lead_version: int) -> list[Any]:
        """Every refusal recorded for one lead, whose latest event is ``lead_version`` (and the
        entries and exits a store from before recorded as events)."""
        before = list(self.events.get(lead_journeys_id(lead_id)))
        ids = [entry_refusals_id(lead_id, v) for v in range(1, lead_version + 1)]
        stored = latest_versions(self, ids)  # one query: which of the lead's events had refusals
        return before + [e for i in ids if i in stored for e in self.events.get(i)]

    def get_enrolment(self, enrolment_id: UUID) -> Enrolment | None:
        try:
            enrolment: Enrolment = self.repository.get(enrolment_id)
        except AggregateNotFoundError:
            return None
        return enrolment


def journeys_of(lead_id: UUID) -> str:
    """The owner of a lead's journey-history claims."""
    return f"journeys:{lead_id.hex}"


def history_claims(histories: Iterable[JourneyHistory]) -> list[Claim]:
    """The claims that store the entries and exits recorded in ``histories`` since they were
    read: an entry under its journey, key and number (taken once), an exit under its enrolment."""
    claims = []
    for h in histories:
        owner = journeys_of(h.lead_id)
        for e in h.take_recorded():
            value: dict[str, Any] = {"enrolment": e.enrolment_id.hex, "at": e.at.isoformat()}
            if e.left:
                claims.append(
                    Claim(f"{owner}:out:{e.enrolment_id.hex}", json.dumps({**value, "reason": e.reason}), owner)
                )
            else:
                value.update(journey=e.journey_id, key=e.entry_key, n=e.number)
                name = f"{owner}:in:{e.journey_id}\x1f{e.entry_key}:{e.number:06d}"
                claims.append(Claim(name, json.dumps(value), owner))
    return claims


def histories_from(claims: Iterable[Claim], lead_ids: Iterable[UUID]) -> dict[UUID, JourneyHistory]:
    """The journey histories of ``lead_ids`` from their claims (entries sort before exits)."""
    histories = {lead: JourneyHistory(lead) for lead in lead_ids}
    by_owner = {journeys_of(lead): h for lead, h in histories.items()}
    for claim in claims:
        v = json.loads(claim.value)
        at, enrolment = datetime.fromisoformat(v["at"]), UUID(v["enrolment"])
        if ":out:" in claim.name[len(claim.owner) :]:
            by_owner[claim.owner].load(EntryOrExit(enrolment, "", "", 0, at, left=True, reason=v.get("reason", "")))
        else:
            by_owner[claim.owner].load(EntryOrExit(enrolment, v["journey"], v["key"], int(v["n"]), at))
    return histories
