"""Leads: capture, re-capture, segment, consent and lifecycle use cases."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime
from functools import partial
from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.utils import get_topic

from engine.application.leads.commands import CaptureLead, LeadRef, RecordLifecycle
from engine.application.partitions import ALL, Partitions, Stop, never
from engine.application.ports import Clock, ModelStore, PiiVault, Scorer
from engine.application.projecting import drain, next_owned_page, next_page
from engine.domain.delivery.delivery import Delivery
from engine.domain.delivery.suppression import Suppression, contact_hash, suppression_id
from engine.domain.delivery.tracking import ClickKind
from engine.domain.journeys.calendar_review import CALENDAR_REVIEW_ID, CalendarReview
from engine.domain.journeys.enrolment import Enrolment
from engine.domain.leads.facts import lead_facts
from engine.domain.leads.identity import LeadIdentity, identity_id_for, identity_keys, lead_id_for
from engine.domain.leads.lead import PII_FIELDS, PII_OWNERS, RETAINED, Lead
from engine.domain.leads.segments import SegmentRules, classify
from engine.domain.screening.model_registry import MODEL_KINDS, ModelRegistry, check_kind, registry_id
from engine.domain.screening.products import Catalogue, affordability, match
from engine.domain.screening.scoring import model_inputs
from engine.domain.shared.errors import HuokeError, InvalidLeadError, LeadNotFoundError
from engine.domain.shared.values import ConsentChannel, ConsentPurpose, JSONDict, Stage
from engine.eventstore import IntegrityError, Mapper, ProcessRecorder, Tracking
from engine.eventstore.saving import (
    current_aggregates,
    delete_snapshots,
    forget_cache,
    fresh_get,
    retry_conflicts,
    save_batch,
    sealing_mapper,
)

UPDATE_TOPICS = [get_topic(Enrolment.LeadUpdateRequested)]
EFFECT_TOPICS = [get_topic(Delivery.Sent), get_topic(Delivery.AddressBounced), get_topic(Delivery.Clicked)]
CAPTURED_TOPICS = [get_topic(Lead.Captured)]
#: The facts product matching reads, recorded with each match (affordability inputs).
MATCH_INPUTS = (
    "loan_type",
    "loan_amount",
    "loan_term_months",
    "monthly_income",
    "monthly_debt",
    "dti",
    "ltv",
    "tier",
    "region",
    "credit_band",
    "segments",
)
#: Propensity is trained on whether a lead applied within this many days of capture.
#: Credit is trained on loans at least this many months on book (bad = any missed repayment).


@dataclass(frozen=True)
class Outcome:
    """What one command did: the lead it touched, whether anything changed, or the error."""

    lead_id: UUID | None
    created: bool = False
    changed: bool = False
    error: str = ""
    #: Values another source gave that disagree with the lead's own (kept for review, not applied).
    conflicts: tuple[str, ...] = ()


#: How a lifecycle fact for a lead nobody captured is refused (the bus waits for such leads).
UNKNOWN_LEAD = "no captured lead matches"


class Leads(Application[UUID]):
    """The leads bounded context: every change to a lead goes through here."""

    #: No snapshots: a snapshot holds a lead's whole state, personal data unsealed.
    snapshotting_intervals: ClassVar[dict[type[Any], int]] = {}

    recorder: ProcessRecorder

    def __init__(
        self,
        env: dict[str, str],
        rules: SegmentRules,
        clock: Clock,
        pepper: str = "huoke",
        catalogue: Catalogue | None = None,
        double_opt_in: bool = False,
        models: ModelStore | None = None,
        vault: PiiVault | None = None,
        legacy_identities: bool = True,
    ) -> None:
        self.vault = vault  # before the application builds its mapper
        self._index_key: bytes | None = None
        #: Whether the identity index may still hold plain keys (a store ``db init`` has not
        #: migrated yet): only then does a look-up that misses try the plain key too.
        self.legacy_identities = legacy_identities
        super().__init__(env)
        self.models = models
        self._scorers: dict[str, tuple[int, Scorer]] = {}
        self._models_loaded = False
        self.double_opt_in = double_opt_in
        self.rules = rules
        self.catalogue = catalogue
        self.clock = clock
        self.pepper = pepper

    def construct_recorder(self) -> ProcessRecorder:
        return self.factory.process_recorder()

    def close(self) -> None:
        super().close()
        close_vault = getattr(self.vault, "close", None)
        if close_vault is not None:
            close_vault()

    def construct_mapper(self) -> Mapper[UUID]:
        """Personal fields are sealed with each lead's own key when a vault is configured."""
        return sealing_mapper(super().construct_mapper(), self.vault, PII_FIELDS, owners=PII_OWNERS)

    # ---- capture ---------------------------------------------------------------------------

    def capture_leads(self, commands: Iterable[CaptureLead]) -> list[Outcome]:
        """Capture a batch in one transaction; a conflicting batch is retried one by one."""
        batch = list(commands)
        try:
            # Fast path: assume every identity is new. Identity ids are deterministic, so a
            # known phone, e-mail or source id makes the insert fail and nothing is written.
            return self._capture(batch, look_up=False)
        except IntegrityError:
            # That pass changed no stored lead (it only made new ones), so the cache stays: a
            # returning lead (a second touch) in a batch must not cost every cached lead a reload.
            pass
        try:
            return self._capture(batch, look_up=True)
        except IntegrityError:
            self._forget_cache()
            return [self._capture_one_with_retry(c) for c in batch]
        except Exception:
            self._forget_cache()
            raise

    def _capture_one_with_retry(self, command: CaptureLead) -> Outcome:
        for _ in range(3):
            try:
                return self._capture([command], look_up=True)[0]
            except IntegrityError:
                self._forget_cache()
        return Outcome(None, error="could not capture: concurrent writers kept conflicting")

    def _capture(self, batch: list[CaptureLead], look_up: bool) -> list[Outcome]:
        pending: dict[UUID, Any] = {}
        claimed: dict[str, UUID] = {}
        outcomes = []
        for cmd in batch:
            at = cmd.captured_at or self.clock.now()
            keys = identity_keys(
                cmd.source["channel"],
                cmd.source.get("external_id"),
                cmd.contact.get("phone"),
                cmd.contact.get("email"),
            )
            lead_id = self._resolve(keys, claimed, look_up)
            created = lead_id is None
            conflicts: tuple[str, ...] = ()
            known: Lead | None = None if lead_id is None else (pending.get(lead_id) or self.repository.get(lead_id))
            if known is not None and known.erased:
                outcomes.append(Outcome(None, error="this person asked to be erased; not re-imported"))
                continue
            if created and self._suppressed(cmd.contact):
                outcomes.append(
                    Outcome(None, error="this phone or e-mail opted out earlier (suppression list); not re-imported")
                )
                continue
            if lead_id is None or known is None:
                lead = Lead(
                    source=cmd.source,
                    contact=cmd.contact,
                    profile=cmd.profile,
                    interest=cmd.interest,
                    contact_issues=list(cmd.contact_issues),
                    captured_at=at,
                )
                lead_id = lead.id
            else:
                lead = known
                known_conflicts = len(lead.conflicts)
                incoming = {
                    "contact": cmd.contact,
                    "profile": cmd.profile,
                    "interest": cmd.interest,
                    "contact_issues": list(cmd.contact_issues),
                }
                lead.touch(cmd.source, at)
                lead.update(incoming, cmd.source, at)
                conflicts = tuple(lead.conflicts[known_conflicts:])
            for key in keys:
                if key not in claimed:
                    claimed[key] = lead_id
                    hashed = self._hashed_key(key)
                    pending[identity_id_for(hashed)] = LeadIdentity(key=hashed, lead_id=lead_id)
            for channel, granted in cmd.consents.items():
                self._consent(lead, channel, granted, cmd.origin or "capture", at)
            pending[lead_id] = lead
            outcomes.append(Outcome(lead_id, created=created, changed=created, conflicts=conflicts))
        if self.vault is not None:  # one transaction for the new leads' data keys
            self.vault.prepare(a.id for a in pending.values() if isinstance(a, Lead))
        self.screen([a for a in pending.values() if isinstance(a, Lead)], None)
        outcomes = [
            replace(o, changed=o.created or bool(pending[o.lead_id].pending_events)) if o.lead_id is not None else o
            for o in outcomes
        ]
        save_batch(self, pending.values())
        return outcomes

    def _resolve(self, keys: list[str], claimed: dict[str, UUID], look_up: bool = True) -> UUID | None:
        """The lead known under the strongest of ``keys``; records every key already taken."""
        found: UUID | None = None
        for key in keys:
            if key not in claimed and look_up:
                identity = self._identity(key)
                if identity is None:
                    continue
                claimed[key] = identity.lead_id
            if found is None and key in claimed:
                found = claimed[key]
        return found

    def screen(self, leads: list[Lead], at: datetime | None) -> None:
        """Segment each lead, score the batch, then match products (eligibility reads tier,
        segments and credit band). Each decision is recorded once, as of ``at`` (default: the
        lead's latest change)."""
        moments = self._moments(leads, at)
        for lead in leads:
            c = classify(self.rules, lead_facts(lead, moments[lead.id]))
            lead.segment(c.audience, c.tier, c.segments, dict(c.reasons), self.rules.version, moments[lead.id])
        self._score(leads, moments)
        for lead in leads:
            self._match(lead, moments[lead.id])

    def _match(self, lead: Lead, at: datetime) -> None:
        if self.catalogue is None:
            return
        facts = lead_facts(lead, at)
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

    # ---- scoring ---------------------------------------------------------------------------

    def score(self, leads: list[Lead], at: datetime | None) -> int:
        """Score leads with every registered model, in one batch per model; record a Scored
        event only where the model version or the inputs changed. Returns events recorded."""
        return self._score(leads, self._moments(leads, at))

    def _moments(self, leads: list[Lead], at: datetime | None) -> dict[UUID, datetime]:
        """When each lead's decisions are taken: ``at``, else its latest change, else now."""
        return {lead.id: at or _last_event_time(lead) or self.clock.now() for lead in leads}

    def _score(self, leads: list[Lead], moments: dict[UUID, datetime]) -> int:
        scorers = self.active_scorers()
        if not scorers:
            return 0
        # Model inputs never include a score, so one set of facts per lead serves every model.
        facts = {lead.id: lead_facts(lead, moments[lead.id]) for lead in leads}
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

    # ---- the daily review ------------------------------------------------------------------

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
            changed += retry_conflicts(self, partial(one_batch, batch, last), self._forget_cache)
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

    def lead_ids(self) -> list[UUID]:
        """Every captured lead, in capture order."""
        out: list[UUID] = []
        position: int | None = None
        while True:
            page = next_page(self.recorder, position, CAPTURED_TOPICS, 5000)
            if page is None:
                return out
            out += [UUID(str(n.originator_id)) for n in page.notes]
            position = page.last

    def _consent(self, lead: Lead, channel: str, granted: bool, source: str, at: datetime) -> None:
        ch = ConsentChannel(channel)
        if granted and ch is ConsentChannel.EMAIL and self.double_opt_in:
            lead.request_consent(ch, ConsentPurpose.MARKETING, source, "opt-in at capture; awaiting confirmation", at)
        elif granted:
            lead.grant_consent(ch, ConsentPurpose.MARKETING, source, "opt-in recorded at capture", at)
        else:
            lead.withdraw_consent(ch, ConsentPurpose.MARKETING, source, "no consent at capture", at)

    def confirm_consent(
        self,
        lead_id: UUID,
        channel: str,
        source: str,
        evidence: str,
        link_issued: datetime,
        at: datetime | None = None,
    ) -> str:
        """The lead confirmed a double opt-in (clicked a link issued at ``link_issued``): consent
        starts now — unless nothing awaits confirmation, or the person opted out (or was erased)
        after the link was sent. '' when consent is in force afterwards, else why not."""

        def attempt() -> str:
            lead = self.fresh_lead(lead_id)  # an opt-out just taken by another process counts
            ch, purpose = ConsentChannel(channel), ConsentPurpose.MARKETING
            refused = lead.check_confirmation(ch, purpose, link_issued)
            if refused:
                return "" if lead.has_consent(ch, purpose) and not lead.erased else refused
            lead.grant_consent(ch, purpose, source, evidence, at or self.clock.now())
            save_batch(self, [lead])
            return ""

        return str(retry_conflicts(self, attempt, self._forget_cache))

    def set_tracking(
        self, lead_id: UUID, channel: str, allowed: bool, source: str, evidence: str, at: datetime | None = None
    ) -> bool:
        """Whether clicks on the lead's messages of ``channel`` ('all': every channel) may be
        tracked (withdrawn: links go out as written); False when nothing changed."""
        channels = [c for c in ConsentChannel if channel in ("all", c.value)]

        def attempt() -> bool:
            lead = self.fresh_lead(lead_id)
            moment = at or self.clock.now()
            purpose = ConsentPurpose.TRACKING
            changed = [
                lead.grant_consent(c, purpose, source, evidence, moment)
                if allowed
                else lead.withdraw_consent(c, purpose, source, evidence, moment)
                for c in channels
            ]
            save_batch(self, [lead])
            return any(changed)

        return bool(retry_conflicts(self, attempt, self._forget_cache))

    def grant_consent(
        self, lead_id: UUID, channel: str, source: str, evidence: str, at: datetime | None = None
    ) -> bool:
        """Marketing consent given with evidence (a signed form, a recorded call); False if it
        was already in force. A contact on the suppression list stays listed (it still blocks
        sends) until the opt-out itself is lifted."""
        if channel not in {c.value for c in ConsentChannel}:
            raise InvalidLeadError("channel", f"unknown channel {channel!r}: email, sms or phone")
        if not evidence.strip():
            raise InvalidLeadError("evidence", "consent needs its evidence (what the lead signed or said, where)")

        def attempt() -> bool:
            lead = self.fresh_lead(lead_id)
            granted = lead.grant_consent(
                ConsentChannel(channel), ConsentPurpose.MARKETING, source, evidence, at or self.clock.now()
            )
            save_batch(self, [lead])
            return granted

        return bool(retry_conflicts(self, attempt, self._forget_cache))

    # ---- lifecycle -------------------------------------------------------------------------

    def record_lifecycle(self, commands: Iterable[RecordLifecycle]) -> list[Outcome]:
        """Apply lifecycle facts in one transaction; each bad fact is reported, not stored. A lead
        another process wrote meanwhile makes the batch read again and redo (facts are idempotent)."""
        batch = list(commands)
        return retry_conflicts(self, lambda: self._record_lifecycle(batch), self._forget_cache)

    def _record_lifecycle(self, commands: list[RecordLifecycle]) -> list[Outcome]:
        pending: dict[UUID, Lead] = {}
        outcomes = []
        for cmd in commands:
            try:
                lead_id = self.find_lead(cmd.lead)
                lead = pending.get(lead_id) or self.get_lead(lead_id)
                before = len(lead.pending_events)
                self._apply_lifecycle(lead, cmd, cmd.at or self.clock.now())
            except HuokeError as e:
                outcomes.append(Outcome(None, error=str(e)))
                continue
            pending[lead_id] = lead
            outcomes.append(Outcome(lead_id, changed=len(lead.pending_events) > before))
        self.screen(list(pending.values()), None)
        save_batch(self, pending.values())
        return outcomes

    def _apply_lifecycle(self, lead: Lead, cmd: RecordLifecycle, at: datetime) -> None:
        match cmd.kind:
            case "application_submitted":
                lead.submit_application(cmd.application_id, cmd.loan_type, cmd.amount, at)
            case "application_approved":
                lead.approve_application(cmd.application_id, cmd.amount, at)
            case "application_declined":
                lead.decline_application(cmd.application_id, cmd.reason or "not stated", at)
            case "loan_funded":
                lead.fund_loan(cmd.application_id, cmd.amount, at, cmd.term_months)
            case "repayment_missed":
                lead.miss_repayment(cmd.application_id, cmd.days_past_due, at)
            case "stage_changed":
                lead.advance_to(Stage(cmd.stage), cmd.reason or "reported by the lender", at)
            case "consent_granted":
                lead.grant_consent(
                    ConsentChannel(cmd.channel),
                    ConsentPurpose.MARKETING,
                    cmd.origin or "import",
                    cmd.reason or "consent reported",
                    at,
                )
            case "consent_withdrawn":
                lead.withdraw_consent(
                    ConsentChannel(cmd.channel),
                    ConsentPurpose.MARKETING,
                    cmd.origin or "import",
                    cmd.reason or "opt-out reported",
                    at,
                )
            case "tagged":
                lead.tag(cmd.tag, cmd.reason or "reported by the lender", at)

    def apply_journey_updates(
        self, journeys: Application[UUID], parts: Partitions = ALL, batch_size: int = 500, stop: Stop = never
    ) -> int:
        """Apply every Enrolment.LeadUpdateRequested (stage, tag) of owned partitions exactly once."""
        return drain(
            lambda: retry_conflicts(self, lambda: self._journey_updates_page(journeys, parts, batch_size)), stop
        )

    def _journey_updates_page(self, journeys: Application[UUID], parts: Partitions, batch_size: int) -> int | None:
        page = next_owned_page(self.recorder, journeys, UPDATE_TOPICS, parts, batch_size, lambda e: e.lead_id)
        if page is None:
            return None
        touched = self.current(e.lead_id for e in page.events)
        for e in page.events:
            lead = touched.get(e.lead_id) or self.get_lead(e.lead_id)
            why = f"journey step '{e.step}'"
            if e.stage:
                lead.advance_to(Stage(e.stage), why, e.at)
            if e.tag:
                lead.tag(e.tag, why, e.at)
            touched[lead.id] = lead
        save_batch(self, touched.values(), page.trackings)
        return len(page.events)

    def apply_referral_news(
        self, referrals: Application[UUID], parts: Partitions = ALL, batch_size: int = 500, stop: Stop = never
    ) -> int:
        """Follow the Referrals log (in the process that decides referrals: the owner of lead
        partition 0): a referee's application is news for the referrer, a paid reward for both
        sides. Journeys react to these lead events. Exactly once, across crashes."""
        if not parts.everything and 0 not in parts.owned:
            return 0
        from engine.domain.referrals.referral import Referral

        topics = [get_topic(Referral.RefereeApplied), get_topic(Referral.Paid)]

        def one_page() -> int | None:
            page = next_page(referrals.recorder, self.recorder.max_tracking_id(referrals.name), topics, batch_size)
            if page is None:
                return None
            touched: dict[UUID, Lead] = {}
            for note in page.notes:
                e: Any = referrals.mapper.to_domain_event(note)
                referral: Referral = referrals.repository.get(e.originator_id, version=e.originator_version)
                if isinstance(e, Referral.RefereeApplied):
                    suspicion = getattr(referrals, "suspicion", None)
                    if suspicion is not None and suspicion(referral, self):
                        continue  # would be held for review: no thank-you before a reviewer's word
                    lead = touched.get(referral.referrer_id) or self.fresh_lead(referral.referrer_id)
                    lead.friend_applied(referral.id, e.at)
                    touched[lead.id] = lead
                    continue
                for role, lead_id in (("referrer", referral.referrer_id), ("referee", referral.referee_id)):
                    lead = touched.get(lead_id) or self.fresh_lead(lead_id)
                    lead.referral_rewarded(referral.id, role, dict(e.referrer_reward if role == "referrer" else
                                                                   e.referee_reward), e.at)  # fmt: skip
                    touched[lead.id] = lead
            save_batch(self, touched.values(), Tracking(referrals.name, page.last))
            return len(page.notes)

        return drain(lambda: retry_conflicts(self, one_page, self._forget_cache), stop)

    def apply_delivery_effects(
        self,
        deliveries: Application[UUID],
        lead_of_send: Callable[[UUID], UUID],
        parts: Partitions = ALL,
        batch_size: int = 500,
        stop: Stop = never,
    ) -> int:
        """Follow the Deliveries log: a lead sent its first message moves from NEW to CONTACTED;
        an address refused for good is flagged on the lead; a person's click on a tracked link is
        recorded on the lead (and makes it engaged). Exactly once, across crashes."""

        def lead_of(e: Any) -> UUID:
            return UUID(str(e.lead_id)) if e.lead_id is not None else lead_of_send(e.originator_id)

        def one_page() -> int | None:
            page = next_owned_page(self.recorder, deliveries, EFFECT_TOPICS, parts, batch_size, lead_of)
            if page is None:
                return None
            lead_ids = [lead_of(e) for e in page.events]
            touched = self.current(lead_ids)
            for e, lead_id in zip(page.events, lead_ids, strict=True):
                lead = touched.get(lead_id) or self.get_lead(lead_id)
                if isinstance(e, Delivery.AddressBounced):
                    kind = "e-mail" if e.channel == "email" else "phone"
                    if lead.contact.get("email" if e.channel == "email" else "phone") == e.recipient:
                        lead.update(
                            {"contact_issues": [f"{kind} {e.recipient} bounced: {e.reason}"]},
                            {"channel": "bounce"},
                            e.at,
                        )
                elif isinstance(e, Delivery.Clicked):
                    if e.kind == ClickKind.HUMAN:  # a scanner's click is never engagement
                        lead.record_click(UUID(str(e.originator_id)), e.journey_id, e.step, e.template, e.link, e.at)
                elif lead.stage is Stage.NEW:
                    lead.advance_to(Stage.CONTACTED, "first message sent", e.at)
                touched[lead_id] = lead
            save_batch(self, touched.values(), page.trackings)
            return len(page.events)

        return drain(lambda: retry_conflicts(self, one_page), stop)

    # ---- opt-out and suppression ------------------------------------------------------------

    def _suppressed(self, contact: JSONDict) -> bool:
        for kind in ("phone", "email"):
            if contact.get(kind):
                try:
                    self.repository.get(suppression_id(contact_hash(self.pepper, kind, contact[kind])))
                except AggregateNotFoundError:
                    continue
                return True
        return False

    def erase(self, lead_id: UUID, reason: str, by: str, at: datetime | None = None) -> Lead:
        """Forget a person (right to erasure) by crypto-shredding: every channel opted out and the
        contact kept on the suppression list as a keyed hash (never re-imported by accident), the
        erasure recorded with its reason, then the lead's data key deleted — every personal field
        of every event of the lead is unreadable from then on. What lending rules require stays
        (``RETAINED``)."""
        if self.vault is None:
            raise HuokeError("erasure needs encryption at rest: set HUOKE_MASTER_KEY (or run huoke db init)")
        at = at or self.clock.now()
        lead = self.fresh_lead(lead_id)
        if lead.erased:
            self.vault.erase(lead_id, at.isoformat())  # scrubs again (the first scrub may have waited in vain)
            return lead
        self.opt_out(lead_id, "all", "erasure", "erased on request", at)

        def attempt() -> Lead:
            current = self.fresh_lead(lead_id)
            current.erase(reason, by, list(RETAINED), at)
            save_batch(self, [current])
            return current

        erased: Lead = retry_conflicts(self, attempt, self._forget_cache)
        self.vault.erase(lead_id, at.isoformat())
        delete_snapshots(self, lead_id)
        self._forget_cache()
        return erased

    def opt_out(
        self,
        lead_id: UUID | None,
        channel: str,
        source: str,
        evidence: str,
        at: datetime | None = None,
        phone: str | None = None,
        email: str | None = None,
    ) -> Outcome:
        """Withdraw marketing consent on ``channel`` ('all' for every channel), effective before the next
        send, and list the contact so no import brings it back. Works even for an unknown contact."""
        at = at or self.clock.now()
        for _ in range(3):
            try:
                return self._opt_out(lead_id, channel, source, evidence, at, phone, email)
            except IntegrityError:
                self._forget_cache()
        return Outcome(lead_id, error="could not record the opt-out: concurrent writers kept conflicting")

    def _opt_out(
        self,
        lead_id: UUID | None,
        channel: str,
        source: str,
        evidence: str,
        at: datetime,
        phone: str | None,
        email: str | None,
    ) -> Outcome:
        lead = self.get_lead(lead_id) if lead_id else None
        channels = [c.value for c in ConsentChannel] if channel == "all" else [channel]
        touched: list[Any] = []
        if lead is not None:
            for ch in channels:
                lead.withdraw_consent(ConsentChannel(ch), ConsentPurpose.MARKETING, source, evidence, at)
            phone, email = phone or lead.contact.get("phone"), email or lead.contact.get("email")
            touched.append(lead)
        for kind, value, kind_channels in (("phone", phone, {"sms", "phone"}), ("email", email, {"email"})):
            if value and kind_channels & set(channels):
                digest = contact_hash(self.pepper, kind, value)
                try:
                    entry: Suppression = self.repository.get(suppression_id(digest))
                except AggregateNotFoundError:
                    entry = Suppression(digest=digest)
                for ch in sorted(kind_channels & set(channels)):
                    entry.suppress(ch, evidence, source, at)
                touched.append(entry)
        save_batch(self, touched)
        return Outcome(lead.id if lead else None, changed=bool(touched))

    # ---- queries ---------------------------------------------------------------------------

    def get_lead(self, lead_id: UUID) -> Lead:
        """The lead's current state (for other use cases; never returned to entrypoints)."""
        try:
            lead: Lead = self.repository.get(lead_id)
        except AggregateNotFoundError:
            raise LeadNotFoundError(lead_id) from None
        return lead

    def affordability(self, lead: Lead) -> JSONDict:
        """DTI now and after, LTV and the most each product of the lead's loan type could lend."""
        return affordability(self.catalogue, lead_facts(lead, self.clock.now()))

    def current(self, lead_ids: Iterable[UUID]) -> dict[UUID, Lead]:
        """Leads as committed now, for a batch (one version query; only changed leads are read)."""
        return current_aggregates(self, {UUID(str(i)) for i in lead_ids})

    def fresh_lead(self, lead_id: UUID) -> Lead:
        """The lead as committed now, read from the store whatever this process cached."""
        try:
            lead: Lead = fresh_get(self, lead_id)
        except AggregateNotFoundError:
            raise LeadNotFoundError(lead_id) from None
        return lead

    def _hashed_key(self, key: str) -> str:
        """The identity index holds keyed hashes, never the phone, e-mail or source id itself."""
        if self._index_key is None:
            self._index_key = self.vault.index_key() if self.vault is not None else self.pepper.encode()
        kind = key.split(":", 1)[0]
        digest = hmac.new(self._index_key, key.encode(), hashlib.sha256).hexdigest()[:40]
        return f"{kind}#{digest}"

    def _identity(self, key: str) -> LeadIdentity | None:
        """The index entry of ``key`` (stores from before hashed keys: its plain entry)."""
        for stored_key in (self._hashed_key(key), key) if self.legacy_identities else (self._hashed_key(key),):
            try:
                identity: LeadIdentity = self.repository.get(identity_id_for(stored_key))
            except AggregateNotFoundError:
                continue
            return identity
        return None

    def migrate_identities(self) -> int:
        """Give every identity indexed under a plain key (stores from before hashed keys) its hashed
        entry, so look-ups and new captures find it; the number added. Idempotent."""
        topic = get_topic(LeadIdentity.Claimed)
        added, start = 0, 1
        while page := self.recorder.select_notifications(start, 1000, topics=[topic]):
            for note in page:
                claimed = self.mapper.to_domain_event(note)
                key = str(getattr(claimed, "key", ""))
                if "#" in key or not key:
                    continue
                hashed = self._hashed_key(key)
                try:
                    save_batch(self, [LeadIdentity(key=hashed, lead_id=claimed.lead_id)])  # type: ignore[attr-defined]
                    added += 1
                except IntegrityError:
                    self._forget_cache()  # already there
            start = page[-1].id + 1
        return added

    def find_lead(self, ref: LeadRef) -> UUID:
        """Resolve a reference to a captured lead's id."""
        if ref.lead_id:
            self.get_lead(ref.lead_id)
            return ref.lead_id
        keys = identity_keys(
            ref.source_channel or "", ref.external_id if ref.source_channel else None, ref.phone, ref.email
        )
        found = self._resolve(keys, {})
        by_contact_only = not (ref.source_channel and ref.external_id)
        if found is not None and by_contact_only and self.get_lead(found).erased:
            found = None  # an erased person's phone or e-mail no longer leads to them
        if found is None:
            raise InvalidLeadError("lead", f"{UNKNOWN_LEAD} {_describe(ref)}")
        return found

    def _forget_cache(self) -> None:
        forget_cache(self)


def _last_event_time(lead: Lead) -> datetime | None:
    """When the lead last changed: pending events first (a score is decided as of that moment)."""
    for e in reversed(lead.pending_events):
        moment = getattr(e, "at", None) or getattr(e, "captured_at", None)
        if isinstance(moment, datetime):
            return moment
    return None


def _describe(ref: LeadRef) -> str:
    parts = [f"{k}={v}" for k, v in vars(ref).items() if v]
    return ", ".join(parts) or "nothing (give lead_id, source_channel+external_id, phone or email)"


__all__ = ["Leads", "Outcome", "lead_id_for"]
