"""The Lead aggregate: one prospective borrower and everything that happened to them."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from engine.domain.leads import lead_upcasts as upcasts
from engine.domain.leads.activity import ActivityDecisions
from engine.domain.leads.attribution import touch_key
from engine.domain.leads.consenting import ConsentDecisions
from engine.domain.leads.identity import identity_keys, lead_id_for
from engine.domain.leads.lending import LendingDecisions
from engine.domain.leads.profile import ProfileDecisions
from engine.domain.leads.records import Loan, Offer, ScoreRecord
from engine.domain.leads.state import LeadState
from engine.domain.shared.folding import decision_of, rebuilt
from engine.domain.shared.money import Money
from engine.domain.shared.topics import keep_topics
from engine.domain.shared.values import (
    ApplicationStatus,
    Audience,
    JSONDict,
    Stage,
    Tier,
    consent_key,
)


class Lead(ActivityDecisions, ProfileDecisions, ConsentDecisions, LendingDecisions, LeadState, Aggregate):
    """A prospective borrower: contact, profile, interest, consent, stage and lifecycle."""

    INITIAL_VERSION = 1
    #: v2 keeps loans, scores and decline/arrears dates; a v1 snapshot starts them empty. v3
    #: keeps them as typed records (loans with Money) instead of dicts. Leads take no snapshots
    #: today (a snapshot would hold personal data unsealed); these keep any older one readable.
    class_version = 3

    upcast_v1_v2 = staticmethod(upcasts.lead_v1_v2)
    upcast_v2_v3 = staticmethod(upcasts.lead_v2_v3)

    class Captured(Aggregate.Created):
        """v2 records what the capture decided with it, where each was an event after it: the
        consents given (``consents``: channel, purpose, source and time of each, proof of
        consent kept through an erasure; ``consent_evidence``: what the person agreed to, in the
        same order, sealed) and the first screening (``screened``: the ``Segmented``, ``Scored``
        and ``ProductsMatched`` it was, each with its ``event`` name, without their personal fields,
        which ``screened_personal`` keeps sealed in the same order). ``told`` gives them back as
        those events."""

        class_version = 2
        source: JSONDict
        contact: JSONDict
        profile: JSONDict
        interest: JSONDict
        contact_issues: list[str]
        captured_at: datetime
        consents: list[JSONDict]
        consent_evidence: list[str]
        screened: list[JSONDict]
        screened_personal: list[JSONDict]

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["consents"], state["consent_evidence"] = [], []
            state["screened"], state["screened_personal"] = [], []

    class ProfileUpdated(Aggregate.Event):
        changes: JSONDict
        source: JSONDict
        at: datetime

    class Touched(Aggregate.Event):
        """The lead came again through another channel, partner, campaign or event than any seen
        before (a touch, for first- and last-touch attribution); ``source`` holds only those."""

        source: JSONDict
        at: datetime

    class DataConflicted(Aggregate.Event):
        """A row from another source (matched by phone, e-mail or a merged source id) disagreed
        with what the lead's own source said: kept for review, never applied."""

        source: JSONDict
        conflicts: JSONDict  # "section.field" -> the value the other source gave
        at: datetime

    class Segmented(Aggregate.Event):
        audience: str
        tier: str
        segments: list[str]
        entered: list[str]
        reasons: JSONDict
        rules_version: str
        at: datetime

    class ProductsMatched(Aggregate.Event):
        """v2 records the inputs the match (and its affordability figures) used."""

        class_version = 2
        product: str
        name: str
        apr: str
        monthly_payment: str
        dti_after: str
        reasons: JSONDict
        catalogue_version: str
        at: datetime
        inputs: JSONDict

        upcast_v1_v2 = staticmethod(upcasts.products_matched_v1_v2)

    class ConsentGranted(Aggregate.Event):
        channel: str
        purpose: str
        source: str
        evidence: str
        at: datetime

    class ConsentRequested(Aggregate.Event):
        channel: str
        purpose: str
        source: str
        evidence: str
        at: datetime

    class ConsentWithdrawn(Aggregate.Event):
        channel: str
        purpose: str
        source: str
        evidence: str
        at: datetime

    class StageChanged(Aggregate.Event):
        from_stage: str
        to_stage: str
        reason: str
        at: datetime

    class ApplicationSubmitted(Aggregate.Event):
        """v2: the amount as Money (None when the application did not say)."""

        class_version = 2
        application_id: str
        loan_type: str
        amount: Money | None
        at: datetime

        upcast_v1_v2 = staticmethod(upcasts.amount_as_money)

    class ApplicationApproved(Aggregate.Event):
        """v2: the amount as Money (None when the approval did not say)."""

        class_version = 2
        application_id: str
        amount: Money | None
        at: datetime

        upcast_v1_v2 = staticmethod(upcasts.amount_as_money)

    class ApplicationDeclined(Aggregate.Event):
        application_id: str
        reason: str
        at: datetime

    class LoanFunded(Aggregate.Event):
        """v2 adds the loan's type and term (for maturity and cross-sell triggers); v3 the
        amount as Money (None only in loans stored before an amount was required)."""

        class_version = 3
        application_id: str
        amount: Money | None
        at: datetime
        loan_type: str
        term_months: int

        upcast_v1_v2 = staticmethod(upcasts.loan_funded_v1_v2)
        upcast_v2_v3 = staticmethod(upcasts.amount_as_money)

    class Scored(Aggregate.Event):
        """A model's score, decided once with the inputs it saw; replay never re-scores."""

        kind: str
        model_version: int
        probability: str
        score: int | None
        band: str
        reasons: list[JSONDict]
        inputs: JSONDict
        at: datetime

    class Tagged(Aggregate.Event):
        tag: str
        reason: str
        at: datetime

    class ReferredFriendApplied(Aggregate.Event):
        """A friend this customer referred applied for a loan (``application_id`` is the
        referral's id: one thank-you per referral)."""

        referral_id: UUID
        application_id: str
        at: datetime

    class ReferralRewarded(Aggregate.Event):
        """A referral reward was granted to this lead, as ``role`` (referrer or referee)."""

        referral_id: UUID
        application_id: str
        role: str
        reward: JSONDict
        at: datetime

    class RepaymentMissed(Aggregate.Event):
        application_id: str
        days_past_due: int
        at: datetime

    class LinkClicked(Aggregate.Event):
        """The person clicked a tracked link of a message (a scanner's click is never this):
        which message (send id, journey, step, template) and which link of it."""

        send_id: UUID
        journey_id: str
        step: str
        template: str
        link: int
        at: datetime

    class Erased(Aggregate.Event):
        """The person asked to be forgotten: their data key is deleted, so every personal field of
        every event of this lead is unreadable for good; ``retained`` says what stays and why."""

        reason: str
        by: str
        retained: list[str]
        at: datetime

    @event(Captured)
    def __init__(
        self,
        source: JSONDict,
        contact: JSONDict,
        profile: JSONDict,
        interest: JSONDict,
        contact_issues: list[str],
        captured_at: datetime,
        consents: list[JSONDict] | None = None,
        consent_evidence: list[str] | None = None,
        screened: list[JSONDict] | None = None,
        screened_personal: list[JSONDict] | None = None,
    ) -> None:
        self.start(source, contact, profile, interest, contact_issues, captured_at)
        # What it records with it sets the state each did as an event of its own (its @event method).
        recorded = _recorded(consents or [], consent_evidence or [], screened or [], screened_personal or [])
        for decided in _rebuilt(recorded, self.id, self.version, self.created_on):
            decided.apply(self)

    def as_one_capture(self) -> Lead:
        """This lead, captured in this batch, given consents and screened with it (nothing else
        yet), as one ``Captured`` that records it all: one event where there were the capture's,
        one per consent, a ``Segmented``, a ``Scored`` per model and a ``ProductsMatched``. Itself
        when it is anything else (a consent awaiting confirmation...). The caller keeps the one
        returned."""
        pending = list(self.pending_events)
        folded = (Lead.ConsentGranted, Lead.Segmented, Lead.Scored, Lead.ProductsMatched)
        if self.version != len(pending) or len(pending) < 2 or not all(isinstance(e, folded) for e in pending[1:]):
            return self
        captured: Any = pending[0]
        grants: list[Any] = [e for e in pending[1:] if isinstance(e, Lead.ConsentGranted)]
        screenings = [decision_of(e) for e in pending[1:] if not isinstance(e, Lead.ConsentGranted)]
        self.collect_events()
        return Lead(
            source=captured.source,
            contact=captured.contact,
            profile=captured.profile,
            interest=captured.interest,
            contact_issues=captured.contact_issues,
            captured_at=captured.captured_at,
            consents=[{"channel": g.channel, "purpose": g.purpose, "source": g.source, "at": g.at} for g in grants],
            consent_evidence=[g.evidence for g in grants],
            screened=[{k: v for k, v in d.items() if k not in _PERSONAL[d["event"]]} for d in screenings],
            screened_personal=[{k: d[k] for k in _PERSONAL[d["event"]]} for d in screenings],
        )

    @staticmethod
    def create_id(
        source: JSONDict, contact: JSONDict, **_: Any
    ) -> UUID:  # eventsourcing calls this with the Captured kwargs
        keys = identity_keys(source["channel"], source.get("external_id"), contact.get("phone"), contact.get("email"))
        return lead_id_for(keys[0])

    # ---- profile ---------------------------------------------------------------------------

    @event(Touched)
    def _touched(self, source: JSONDict, at: datetime) -> None:
        self.touches = (*self.touches, touch_key(source))

    @event(LinkClicked)
    def _link_clicked(self, send_id: UUID, journey_id: str, step: str, template: str, link: int, at: datetime) -> None:
        self.clicked_links |= {(send_id, link)}
        self.clicks = [*self.clicks, at][-KEPT_CLICKS:]

    @event(Erased)
    def _erased(self, reason: str, by: str, retained: list[str], at: datetime) -> None:
        self.erased = True
        self.contact, self.profile, self.interest, self.contact_issues = {}, {}, {}, []
        self.conflicts = ()
        self.scores = {k: replace(v, inputs={}, reasons=[]) for k, v in self.scores.items()}
        if self.offer:  # the payment and DTI with the loan reveal income (income = payment / DTI)
            self.offer = replace(self.offer, monthly_payment="", dti_after="")

    @event(DataConflicted)
    def _data_conflicted(self, source: JSONDict, conflicts: JSONDict, at: datetime) -> None:
        self.conflicts = (*self.conflicts, *(f"{k}={v}" for k, v in conflicts.items()))

    @event(ProfileUpdated)
    def _profile_updated(self, changes: JSONDict, source: JSONDict, at: datetime) -> None:
        for section in ("contact", "profile", "interest"):
            if section in changes:
                setattr(self, section, {**getattr(self, section), **changes[section]})
        self.contact_issues = sorted({*self.contact_issues, *changes.get("contact_issues", [])})

    @event(Segmented)
    def _segmented(
        self,
        audience: str,
        tier: str,
        segments: list[str],
        entered: list[str],
        reasons: JSONDict,
        rules_version: str,
        at: datetime,
    ) -> None:
        self.audience = Audience(audience)
        self.tier = Tier(tier)
        self.segments = tuple(segments)

    @event(ProductsMatched)
    def _products_matched(
        self,
        product: str,
        name: str,
        apr: str,
        monthly_payment: str,
        dti_after: str,
        reasons: JSONDict,
        catalogue_version: str,
        at: datetime,
        inputs: JSONDict,
    ) -> None:
        self.offer = Offer(product, name, apr, monthly_payment, dti_after, reasons)

    # ---- scores ----------------------------------------------------------------------------

    @event(Scored)
    def _scored(
        self,
        kind: str,
        model_version: int,
        probability: str,
        score: int | None,
        band: str,
        reasons: list[JSONDict],
        inputs: JSONDict,
        at: datetime,
    ) -> None:
        self.scores[kind] = ScoreRecord(kind, model_version, Decimal(probability), score, band, reasons, inputs, at)

    # ---- consent ---------------------------------------------------------------------------

    @event(ConsentGranted)
    def _consent_granted(self, channel: str, purpose: str, source: str, evidence: str, at: datetime) -> None:
        self.consents[consent_key(channel, purpose)] = True
        self.pending_consents -= {consent_key(channel, purpose)}

    @event(ConsentRequested)
    def _consent_requested(self, channel: str, purpose: str, source: str, evidence: str, at: datetime) -> None:
        self.pending_consents |= {consent_key(channel, purpose)}

    @event(ConsentWithdrawn)
    def _consent_withdrawn(self, channel: str, purpose: str, source: str, evidence: str, at: datetime) -> None:
        self.consents[consent_key(channel, purpose)] = False
        self.pending_consents -= {consent_key(channel, purpose)}  # an open confirmation is void
        self.withdrawn_at[consent_key(channel, purpose)] = at

    # ---- stage and lifecycle ---------------------------------------------------------------

    @event(StageChanged)
    def _stage_changed(self, from_stage: str, to_stage: str, reason: str, at: datetime) -> None:
        self.stage = Stage(to_stage)

    @event(ApplicationSubmitted)
    def _application_submitted(self, application_id: str, loan_type: str, amount: Money | None, at: datetime) -> None:
        self.applications[application_id] = ApplicationStatus.SUBMITTED
        self.application_types[application_id] = loan_type
        self.last_applied_at = at
        self.first_applied_at = self.first_applied_at or at

    @event(ApplicationApproved)
    def _application_approved(self, application_id: str, amount: Money | None, at: datetime) -> None:
        self.applications[application_id] = ApplicationStatus.APPROVED

    @event(ApplicationDeclined)
    def _application_declined(self, application_id: str, reason: str, at: datetime) -> None:
        self.applications[application_id] = ApplicationStatus.DECLINED
        self.last_declined_at = at

    @event(LoanFunded)
    def _loan_funded(
        self, application_id: str, amount: Money | None, at: datetime, loan_type: str, term_months: int
    ) -> None:
        self.applications[application_id] = ApplicationStatus.FUNDED
        self.last_funded_at = at
        self.loans[application_id] = Loan(
            application_id, loan_type or self.application_types.get(application_id, ""), amount, at, term_months, 0
        )

    @event(RepaymentMissed)
    def _repayment_missed(self, application_id: str, days_past_due: int, at: datetime) -> None:
        self.missed_repayments += 1
        self.last_missed_at = at
        if (loan := self.loans.get(application_id)) is not None:
            self.loans[application_id] = replace(loan, missed=loan.missed + 1)

    @event(ReferredFriendApplied)
    def _friend_applied(self, referral_id: UUID, application_id: str, at: datetime) -> None:
        self.referral_news |= {f"{referral_id}:applied"}

    @event(ReferralRewarded)
    def _referral_rewarded(
        self, referral_id: UUID, application_id: str, role: str, reward: JSONDict, at: datetime
    ) -> None:
        self.referral_news |= {f"{referral_id}:rewarded:{role}"}

    @event(Tagged)
    def _tagged(self, tag: str, reason: str, at: datetime) -> None:
        self.tags |= {tag}


keep_topics("engine.domain.lead", Lead)


#: Clicks a lead keeps for its engagement score (older ones weigh almost nothing).
KEPT_CLICKS = 50


#: The personal fields of the screening events a capture records (sealed in
#: ``screened_personal``), and what a reader gets in their place once the lead is erased.
_PERSONAL: dict[str, dict[str, Any]] = {
    "Segmented": {"reasons": {}},
    "Scored": {"inputs": {}, "reasons": []},
    "ProductsMatched": {"inputs": {}, "monthly_payment": "", "dti_after": ""},
}
_RECORDED: dict[str, type[Any]] = {
    "ConsentGranted": Lead.ConsentGranted,
    "Segmented": Lead.Segmented,
    "Scored": Lead.Scored,
    "ProductsMatched": Lead.ProductsMatched,
}


def _recorded(
    consents: list[JSONDict], evidence: list[str], screened: list[JSONDict], personal: list[JSONDict]
) -> list[JSONDict]:
    """The events a capture records, in order, as their fields with their ``event`` name: each
    consent with its evidence, each screening with its personal fields (placeholders where the
    lead was erased)."""
    granted = [
        {"event": "ConsentGranted", **c, "evidence": evidence[i] if i < len(evidence) else "(erased)"}
        for i, c in enumerate(consents)
    ]
    screenings = [
        {**_PERSONAL[d["event"]], **(personal[i] if i < len(personal) else {}), **d} for i, d in enumerate(screened)
    ]
    return granted + screenings


def _rebuilt(recorded: list[JSONDict], originator_id: Any, version: int, timestamp: Any) -> list[Any]:
    return [rebuilt(_RECORDED[d["event"]], d, originator_id, version, timestamp) for d in recorded]


def told(e: Any) -> list[Any]:
    """A lead's stored event as the events it tells: a capture with its consents and first
    screening is the capture, a ``ConsentGranted`` for each consent, its ``Segmented``,
    ``Scored`` and ``ProductsMatched`` (rebuilt for readers: the why-trail, the views, the
    backtest); any other event is itself."""
    if not isinstance(e, Lead.Captured):
        return [e]
    recorded = _recorded(
        list(getattr(e, "consents", None) or []),
        list(getattr(e, "consent_evidence", None) or []),
        list(getattr(e, "screened", None) or []),
        list(getattr(e, "screened_personal", None) or []),
    )
    return [e, *_rebuilt(recorded, e.originator_id, e.originator_version, e.timestamp)]
