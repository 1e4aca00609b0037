"""Scoring leads: segments, model scores, product matches, the model registry and the daily calendar review."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from functools import partial
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from engine.application.leads.base import MATCH_INPUTS, LeadsBase
from engine.application.ports import Scorer
from engine.domain.journeys.calendar_review import CALENDAR_REVIEW_ID, CalendarReview
from engine.domain.leads.facts import lead_facts, with_screening
from engine.domain.leads.lead import Lead
from engine.domain.leads.segments import classify
from engine.domain.screening.features import model_inputs
from engine.domain.screening.model_registry import MODEL_KINDS, ModelRegistry, check_kind, registry_id
from engine.domain.screening.products import affordability, match
from engine.domain.shared.values import JSONDict
from engine.eventstore.saving import (
    fresh_get,
    retry_conflicts,
    save_batch,
)

#: Attempts a calendar review batch gets before its tick fails (see ``review_calendar``).
REVIEW_ATTEMPTS = 20


class ScoringJobs(LeadsBase):
    """Scoring leads: segments, model scores, product matches, the model registry and the daily calendar review."""

    def screen(self, leads: list[Lead], at: datetime | None) -> None:
        """Segment each lead, score the batch, then match products (eligibility reads tier,
        segments and credit band). Each decision is recorded once, as of ``at`` (default: the
        lead's latest change)."""
        moments = self._moments(leads, at)
        facts = {lead.id: lead_facts(lead, moments[lead.id]) for lead in leads}  # once per lead
        for lead in leads:
            c = classify(self.rules, facts[lead.id])
            lead.segment(c.audience, c.tier, c.segments, dict(c.reasons), self.rules.version, moments[lead.id])
            facts[lead.id] = with_screening(facts[lead.id], lead)
        self._score(leads, moments, facts)
        for lead in leads:
            self._match(lead, moments[lead.id], with_screening(facts[lead.id], lead))

    def _match(self, lead: Lead, at: datetime, facts: JSONDict | None = None) -> None:
        if self.catalogue is None:
            return
        facts = facts if facts is not None else lead_facts(lead, at)
        found = match(self.catalogue, facts)
        if found is None:
            return
        language = lead.contact.get("language") or "zh-CN"
        offer: JSONDict = {
            "product": "",
            "name": "",
            "apr": "",
            "monthly_payment": "",
            "dti_after": "",
            "reasons": found.reasons,
        }
        if found.product is not None:
            offer.update(
                product=found.product.id,
                name=found.product.name.get(language) or next(iter(found.product.name.values()), ""),
                apr=str(found.apr),
                monthly_payment=str(found.payment or ""),
                dti_after=str(found.dti_after or ""),
            )
        inputs = {k: facts[k] if isinstance(facts[k], list) else str(facts[k]) for k in MATCH_INPUTS if k in facts}
        lead.record_match(offer, inputs, self.catalogue.version, at)

    def score(self, leads: list[Lead], at: datetime | None) -> int:
        """Score leads with every registered model, in one batch per model; record a Scored
        event only where the model version or the inputs changed. Returns events recorded."""
        return self._score(leads, self._moments(leads, at))

    def _moments(self, leads: list[Lead], at: datetime | None) -> dict[UUID, datetime]:
        """When each lead's decisions are taken: ``at``, else its latest change, else now."""
        return {lead.id: at or _last_event_time(lead) or self.clock.now() for lead in leads}

    def _score(
        self, leads: list[Lead], moments: dict[UUID, datetime], facts: dict[UUID, JSONDict] | None = None
    ) -> int:
        scorers = self.active_scorers()
        if not scorers:
            return 0
        # Model inputs never include a score, so one set of facts per lead serves every model.
        facts = facts if facts is not None else {lead.id: lead_facts(lead, moments[lead.id]) for lead in leads}
        recorded = 0
        for kind, (version, scorer) in scorers.items():
            todo: list[tuple[Lead, JSONDict, datetime]] = []
            for lead in leads:
                inputs = model_inputs(facts[lead.id], scorer.features)
                current = lead.score_of(kind)
                # Only leads whose inputs or model changed are scored (record_score checks again).
                if current and current.scored(version, inputs):
                    continue
                todo.append((lead, inputs, moments[lead.id]))
            for (lead, inputs, moment), result in zip(todo, scorer.score_many([t[1] for t in todo]), strict=True):
                recorded += lead.record_score(
                    kind,
                    version,
                    result.probability,
                    result.score,
                    result.band,
                    [r.as_dict() for r in result.reasons],
                    inputs,
                    moment,
                )
        return recorded

    def active_scorers(self) -> dict[str, tuple[int, Scorer]]:
        """The newest registered version of each model, loaded once (files checked by SHA-256)."""
        if self.models is None:
            return {}
        if not self._models_loaded:
            self.reload_models()
        return self._scorers

    def reload_models(self) -> None:
        """Re-read the registry (another process may have trained a model)."""
        scorers: dict[str, tuple[int, Scorer]] = {}
        if self.models is not None:
            for kind in MODEL_KINDS:
                # One scorer per score kind: each kind's newest version, and each journey's uplift.
                for scored_as, entry in self.registry(kind).in_use().items():
                    known = self._scorers.get(scored_as)
                    if known and known[0] == entry["version"]:
                        scorers[scored_as] = known
                    else:
                        loaded = self.models.load(kind, entry["artefact"], entry["sha256"])
                        scorers[scored_as] = (entry["version"], loaded)
        self._scorers = scorers
        self._models_loaded = True

    def registry(self, kind: str) -> ModelRegistry:
        """The registry of one kind of model, read fresh from the store (never the cache)."""
        check_kind(kind)
        try:
            registry: ModelRegistry = fresh_get(self, registry_id(kind))
        except AggregateNotFoundError:
            return ModelRegistry(kind=kind)
        return registry

    def register_model(self, kind: str, trained_by: str, **version: Any) -> int:
        """Record a trained model as the new version of its kind, and use it from now on."""
        registry = self.registry(kind)
        number = registry.register(trained_by=trained_by, at=self.clock.now(), **version)
        save_batch(self, [registry])
        self.reload_models()
        return number

    def record_drift(self, kind: str, version: int, **measured: Any) -> None:
        """Record a model's scheduled drift and calibration measurement on its registry."""
        registry = self.registry(kind)
        registry.drift_measured(version=version, at=self.clock.now(), **measured)
        save_batch(self, [registry])

    def score_all(self, batch_size: int = 1000, progress: Any = None) -> int:
        """Score every lead with the registered models (after a new version); returns events recorded."""
        recorded = 0
        ids = list(self.lead_ids())
        for start in range(0, len(ids), batch_size):
            leads = [self.get_lead(i) for i in ids[start : start + batch_size]]
            try:
                recorded += self.score(leads, self.clock.now())
                save_batch(self, leads)
            except Exception:
                self._forget_cache()
                raise
            if progress is not None:
                progress(len(leads))
        return recorded

    def affordability(self, lead: Lead) -> JSONDict:
        """DTI now and after, LTV and the most each product of the lead's loan type could lend."""
        return affordability(self.catalogue, lead_facts(lead, self.clock.now()))

    def last_reviewed_day(self) -> date | None:
        try:
            review: CalendarReview = fresh_get(self, CALENDAR_REVIEW_ID)
        except AggregateNotFoundError:
            return None
        return review.last_day

    def review_calendar(self, day: date, lead_ids: Iterable[UUID], at: datetime, batch_size: int = 1000) -> int:
        """Re-segment (and rescore) leads whose facts move with the calendar, as of ``at``; record
        the day as reviewed in the same transaction as the last batch. Returns leads changed.

        The leads may belong to any worker's partitions, so a batch that meets a lead another
        process wrote meanwhile is read again and redone (never a failed tick)."""
        ids = list(lead_ids)
        if self._reviewed(day):
            return 0
        changed = 0

        def one_batch(batch: list[UUID], last: bool) -> int:
            current = self.current(batch)  # as committed now, in any process
            leads = [current.get(i) or self.get_lead(i) for i in batch]
            self.screen(leads, at)
            touched = [lead for lead in leads if lead.pending_events]
            if not last:
                save_batch(self, touched)
                return len(touched)
            review = self._review_record()
            review.reviewed(day, len(ids), changed + len(touched), at)
            save_batch(self, [*touched, review])
            return len(touched)

        for start in range(0, max(len(ids), 1), batch_size):
            batch, last = ids[start : start + batch_size], start + batch_size >= len(ids)
            # Its leads are every partition's: while the workers that own them are busy, one of
            # a thousand is often written between this batch's read and its write. Each attempt
            # reads again, so more attempts are what it takes (a live topology's review failed
            # its tick after five conflicts in a row).
            changed += retry_conflicts(self, partial(one_batch, batch, last), self._forget_cache, REVIEW_ATTEMPTS)
        return changed

    def _review_record(self) -> CalendarReview:
        try:
            review: CalendarReview = fresh_get(self, CALENDAR_REVIEW_ID)
        except AggregateNotFoundError:
            review = CalendarReview()
        return review

    def _reviewed(self, day: date) -> bool:
        last = self._review_record().last_day
        return last is not None and day <= last


def _last_event_time(lead: Lead) -> datetime | None:
    """When the lead last changed: pending events first (a score is decided as of that moment)."""
    for e in reversed(lead.pending_events):
        moment = getattr(e, "at", None) or getattr(e, "captured_at", None)
        if isinstance(moment, datetime):
            return moment
    return None
