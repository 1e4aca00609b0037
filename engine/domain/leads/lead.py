"""The Lead aggregate: one prospective borrower and everything that happened to them."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from engine.domain.leads.attribution import attribution_of, touch_key
from engine.domain.leads.identity import identity_keys, lead_id_for
from engine.domain.leads.records import Loan, Offer, ScoreRecord
from engine.domain.shared.durations import utc_text
from engine.domain.shared.errors import InvalidLeadError
from engine.domain.shared.money import Money, stored_amount
from engine.domain.shared.topics import keep_topics
from engine.domain.shared.values import (
    OPEN_APPLICATION,
    ApplicationStatus,
    Audience,
    ConsentChannel,
    ConsentPurpose,
    JSONDict,
    Stage,
    Tier,
    consent_key,
    stage_rank,
)


class Lead(Aggregate):
    """A prospective borrower: contact, profile, interest, consent, stage and lifecycle."""

    INITIAL_VERSION = 1
    #: v2 keeps loans, scores and decline/arrears dates; a v1 snapshot starts them empty. v3
    #: keeps them as typed records (loans with Money) instead of dicts. Leads take no snapshots
    #: today (a snapshot would hold personal data unsealed); these keep any older one readable.
    class_version = 3

    @staticmethod
    def upcast_v1_v2(state: JSONDict) -> None:
        state.setdefault("loans", {})
        state.setdefault("application_types", {})
        state.setdefault("scores", {})
        state.setdefault("first_applied_at", state.get("last_applied_at"))
        state.setdefault("last_declined_at", None)
        state.setdefault("last_missed_at", None)

    @staticmethod
    def upcast_v2_v3(state: JSONDict) -> None:
        state["loans"] = {a: Loan.of(a, loan) for a, loan in state["loans"].items()}
        state["scores"] = {k: ScoreRecord.of(k, score) for k, score in state["scores"].items()}
        state["offer"] = Offer.of(state["offer"]) if state.get("offer") else None

    class Captured(Aggregate.Created):
        source: JSONDict
        contact: JSONDict
        profile: JSONDict
        interest: JSONDict
        contact_issues: list[str]
        captured_at: datetime

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

        @staticmethod
        def upcast_v1_v2(state: JSONDict) -> None:
            state["inputs"] = {}  # v1 did not record them

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

        @staticmethod
        def upcast_v1_v2(state: JSONDict) -> None:
            state["amount"] = stored_amount(state["amount"])

    class ApplicationApproved(Aggregate.Event):
        """v2: the amount as Money (None when the approval did not say)."""

        class_version = 2
        application_id: str
        amount: Money | None
        at: datetime

        @staticmethod
        def upcast_v1_v2(state: JSONDict) -> None:
            state["amount"] = stored_amount(state["amount"])

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

        @staticmethod
        def upcast_v1_v2(state: JSONDict) -> None:
            state["loan_type"] = ""  # taken from the application when the loan is replayed
            state["term_months"] = 0  # unknown

        @staticmethod
        def upcast_v2_v3(state: JSONDict) -> None:
            state["amount"] = stored_amount(state["amount"])

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
    ) -> None:
        self.source = source
        self.contact = contact
        self.profile = profile
        self.interest = interest
        self.contact_issues = list(contact_issues)
        self.captured_at = captured_at
        self.stage = Stage.NEW
        self.audience = Audience.GENERAL
        self.tier = Tier.OTHER
        self.segments: tuple[str, ...] = ()
        self.consents: dict[str, bool] = {}
        self.pending_consents: set[str] = set()
        #: When each consent was last withdrawn (a confirmation link older than that grants nothing).
        self.withdrawn_at: dict[str, datetime] = {}
        #: The person's clicks on tracked links (the latest ``KEPT_CLICKS``: the engagement score).
        self.clicks: list[datetime] = []
        self.clicked_links: set[tuple[UUID, int]] = set()
        self.applications: dict[str, str] = {}
        self.missed_repayments = 0
        self.tags: set[str] = set()
        #: Referral news already recorded on this lead (each once).
        self.referral_news: set[str] = set()
        self.offer: Offer | None = None
        self.last_applied_at: datetime | None = None
        self.last_funded_at: datetime | None = None
        self.first_applied_at: datetime | None = None
        self.last_declined_at: datetime | None = None
        self.last_missed_at: datetime | None = None
        self.application_types: dict[str, str] = {}
        self.loans: dict[str, Loan] = {}
        self.scores: dict[str, ScoreRecord] = {}

    @staticmethod
    def create_id(
        source: JSONDict, contact: JSONDict, **_: Any
    ) -> UUID:  # eventsourcing calls this with the Captured kwargs
        keys = identity_keys(source["channel"], source.get("external_id"), contact.get("phone"), contact.get("email"))
        return lead_id_for(keys[0])

    # ---- profile ---------------------------------------------------------------------------

    #: The attribution key of every source the lead came through after the first (see ``touch``).
    touches: tuple[str, ...] = ()

    def touch(self, source: JSONDict, at: datetime) -> bool:
        """Record that the lead came (again) through ``source``, once per distinct attribution
        (channel, partner, campaign, UTM, event): importing the same rows again records nothing."""
        key = touch_key(source)
        if self.erased or key == touch_key(self.source) or key in self.touches:
            return False
        self._touched(source=attribution_of(source), at=at)
        return True

    @event(Touched)
    def _touched(self, source: JSONDict, at: datetime) -> None:
        self.touches = (*self.touches, touch_key(source))

    #: "section.field=value" of every conflict recorded (so a re-import records none again).
    conflicts: tuple[str, ...] = ()
    #: Erased on request: personal data unreadable, nothing personal recorded again.
    erased: bool = False

    def record_click(self, send_id: UUID, journey_id: str, step: str, template: str, link: int, at: datetime) -> bool:
        """A person's click on link ``link`` of a message (once per link); the first makes the
        lead engaged, with the message and link as the reason, unless it is further on."""
        if self.erased or (send_id, link) in self.clicked_links:
            return False
        self._link_clicked(send_id=send_id, journey_id=journey_id, step=step, template=template, link=link, at=at)
        if self.stage in (Stage.NEW, Stage.CONTACTED):
            self.advance_to(Stage.ENGAGED, f"clicked link {link} of {template} ({journey_id}, step {step})", at)
        return True

    @event(LinkClicked)
    def _link_clicked(self, send_id: UUID, journey_id: str, step: str, template: str, link: int, at: datetime) -> None:
        self.clicked_links.add((send_id, link))
        self.clicks = [*self.clicks, at][-KEPT_CLICKS:]

    def erase(self, reason: str, by: str, retained: list[str], at: datetime) -> None:
        if not self.erased:
            self._erased(reason=reason, by=by, retained=retained, at=at)

    @event(Erased)
    def _erased(self, reason: str, by: str, retained: list[str], at: datetime) -> None:
        self.erased = True
        self.contact, self.profile, self.interest, self.contact_issues = {}, {}, {}, []
        self.conflicts = ()
        self.scores = {k: replace(v, inputs={}, reasons=[]) for k, v in self.scores.items()}
        if self.offer:  # the payment and DTI with the loan reveal income (income = payment / DTI)
            self.offer = replace(self.offer, monthly_payment="", dti_after="")

    def owned_by(self, source: JSONDict) -> bool:
        """Whether ``source`` is the record this lead was captured from (its system of record)."""
        return bool(source.get("external_id")) and (source.get("channel"), source.get("external_id")) == (
            self.source.get("channel"),
            self.source.get("external_id"),
        )

    def update(self, incoming: JSONDict, source: JSONDict, at: datetime) -> bool:
        """Merge what a row says about the lead. The lead's own source updates it; another source
        (a partner's copy matched by phone or e-mail) only fills what the lead lacks, and a value
        that disagrees is recorded as a conflict to review, once — never applied, so importing
        the same files again changes nothing."""
        if self.erased:
            return False
        owner = self.owned_by(source)
        changes: JSONDict = {}
        disagreements: JSONDict = {}
        for section in ("contact", "profile", "interest"):
            current: JSONDict = getattr(self, section)
            delta = {k: v for k, v in incoming.get(section, {}).items() if v is not None and current.get(k) != v}
            if not owner:
                for k, v in delta.items():
                    if current.get(k) is not None and f"{section}.{k}={v}" not in self.conflicts:
                        disagreements[f"{section}.{k}"] = v
                delta = {k: v for k, v in delta.items() if current.get(k) is None}
            if delta:
                changes[section] = delta
        if disagreements:
            self._data_conflicted(source=source, conflicts=disagreements, at=at)
        issues = sorted(set(incoming.get("contact_issues", [])) - set(self.contact_issues))
        if issues:
            changes["contact_issues"] = issues
        if not changes:
            return False
        self._profile_updated(changes=changes, source=source, at=at)
        return True

    @event(DataConflicted)
    def _data_conflicted(self, source: JSONDict, conflicts: JSONDict, at: datetime) -> None:
        self.conflicts = (*self.conflicts, *(f"{k}={v}" for k, v in conflicts.items()))

    @event(ProfileUpdated)
    def _profile_updated(self, changes: JSONDict, source: JSONDict, at: datetime) -> None:
        for section in ("contact", "profile", "interest"):
            if section in changes:
                setattr(self, section, {**getattr(self, section), **changes[section]})
        self.contact_issues = sorted({*self.contact_issues, *changes.get("contact_issues", [])})

    def segment(
        self,
        audience: Audience,
        tier: Tier,
        segments: list[str],
        reasons: JSONDict,
        rules_version: str,
        at: datetime,
    ) -> bool:
        """Record segment membership when it differs from what is recorded."""
        if (audience, tier, tuple(segments)) == (self.audience, self.tier, self.segments):
            return False
        self._segmented(
            audience=audience.value,
            tier=tier.value,
            segments=list(segments),
            entered=sorted(set(segments) - set(self.segments)),
            reasons=reasons,
            rules_version=rules_version,
            at=at,
        )
        return True

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

    def record_match(self, offer: JSONDict, inputs: JSONDict, catalogue_version: str, at: datetime) -> bool:
        """Record the product match (with the inputs it used) when it differs from the one on file."""
        if self.offer is not None and Offer.of(offer) == self.offer:
            return False
        self._products_matched(
            product=offer.get("product", ""),
            name=offer.get("name", ""),
            apr=offer.get("apr", ""),
            monthly_payment=offer.get("monthly_payment", ""),
            dti_after=offer.get("dti_after", ""),
            reasons=offer.get("reasons", {}),
            catalogue_version=catalogue_version,
            at=at,
            inputs=inputs,
        )
        return True

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

    def record_score(
        self,
        kind: str,
        model_version: int,
        probability: float,
        score: int | None,
        band: str,
        reasons: list[JSONDict],
        inputs: JSONDict,
        at: datetime,
    ) -> bool:
        """Record a score unless the same model already scored the same inputs."""
        current = self.score_of(kind)
        if current and current.scored(model_version, inputs):
            return False
        self._scored(
            kind=kind,
            model_version=model_version,
            probability=f"{probability:.6f}",
            score=score,
            band=band,
            reasons=reasons,
            inputs=inputs,
            at=at,
        )
        return True

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

    # ---- the recorded loans, scores and offer ----------------------------------------------

    def funded_loans(self) -> list[Loan]:
        """The loans this lender funded for the lead, in the order they were funded."""
        return list(self.loans.values())

    def score_of(self, kind: str) -> ScoreRecord | None:
        """The latest score of ``kind`` (credit or propensity), if the lead was scored."""
        return self.scores.get(kind)

    @property
    def matched_offer(self) -> Offer | None:
        """The product match on file (None before any match was recorded)."""
        return self.offer

    # ---- consent ---------------------------------------------------------------------------

    def has_consent(self, channel: ConsentChannel, purpose: ConsentPurpose) -> bool:
        """Whether the latest recorded consent for (channel, purpose) is a grant."""
        return self.consents.get(consent_key(channel, purpose), False)

    def grant_consent(
        self,
        channel: ConsentChannel,
        purpose: ConsentPurpose,
        source: str,
        evidence: str,
        at: datetime,
    ) -> bool:
        """Record a grant unless consent is already in force."""
        if self.has_consent(channel, purpose):
            return False
        self._consent_granted(channel=channel.value, purpose=purpose.value, source=source, evidence=evidence, at=at)
        return True

    @event(ConsentGranted)
    def _consent_granted(self, channel: str, purpose: str, source: str, evidence: str, at: datetime) -> None:
        self.consents[consent_key(channel, purpose)] = True
        self.pending_consents.discard(consent_key(channel, purpose))

    def request_consent(
        self, channel: ConsentChannel, purpose: ConsentPurpose, source: str, evidence: str, at: datetime
    ) -> bool:
        """Double opt-in: record the request; consent starts only when the lead confirms."""
        if self.has_consent(channel, purpose) or consent_key(channel, purpose) in self.pending_consents:
            return False
        self._consent_requested(channel=channel.value, purpose=purpose.value, source=source, evidence=evidence, at=at)
        return True

    @event(ConsentRequested)
    def _consent_requested(self, channel: str, purpose: str, source: str, evidence: str, at: datetime) -> None:
        self.pending_consents.add(consent_key(channel, purpose))

    def withdraw_consent(
        self,
        channel: ConsentChannel,
        purpose: ConsentPurpose,
        source: str,
        evidence: str,
        at: datetime,
    ) -> bool:
        """Record a withdrawal; an opt-out is recorded even if no grant was on file."""
        if self.consents.get(consent_key(channel, purpose)) is False:
            return False
        self._consent_withdrawn(channel=channel.value, purpose=purpose.value, source=source, evidence=evidence, at=at)
        return True

    @event(ConsentWithdrawn)
    def _consent_withdrawn(self, channel: str, purpose: str, source: str, evidence: str, at: datetime) -> None:
        self.consents[consent_key(channel, purpose)] = False
        self.pending_consents.discard(consent_key(channel, purpose))  # an open confirmation is void
        self.withdrawn_at[consent_key(channel, purpose)] = at

    def check_confirmation(self, channel: ConsentChannel, purpose: ConsentPurpose, link_issued: datetime) -> str:
        """Why a confirmation link issued at ``link_issued`` may not start consent ('' when it
        may): consent moves forward only by the person's own act, never past a later opt-out."""
        key = consent_key(channel, purpose)
        if self.erased:
            return "the person was erased"
        if key not in self.pending_consents:
            return "no confirmation is awaited"
        withdrawn = self.withdrawn_at.get(key)
        if withdrawn is not None and withdrawn >= link_issued:
            return f"the link is older than the opt-out of {utc_text(withdrawn)}"
        return ""

    # ---- stage and lifecycle ---------------------------------------------------------------

    def advance_to(self, stage: Stage, reason: str, at: datetime) -> bool:
        """Move forward in the funnel (or to LOST); moving backwards is ignored."""
        if stage == self.stage:
            return False
        backwards = stage_rank(stage) < stage_rank(self.stage)
        if Stage.LOST not in (stage, self.stage) and backwards:
            return False
        self._stage_changed(from_stage=self.stage.value, to_stage=stage.value, reason=reason, at=at)
        return True

    @event(StageChanged)
    def _stage_changed(self, from_stage: str, to_stage: str, reason: str, at: datetime) -> None:
        self.stage = Stage(to_stage)

    def submit_application(self, application_id: str, loan_type: str, amount: Money | None, at: datetime) -> bool:
        """Record an application (once per application id) and move the lead to APPLIED."""
        if application_id in self.applications:
            return False
        self._application_submitted(application_id=application_id, loan_type=loan_type, amount=amount, at=at)
        self.advance_to(Stage.APPLIED, f"application {application_id} submitted", at)
        return True

    @event(ApplicationSubmitted)
    def _application_submitted(self, application_id: str, loan_type: str, amount: Money | None, at: datetime) -> None:
        self.applications[application_id] = ApplicationStatus.SUBMITTED
        self.application_types[application_id] = loan_type
        self.last_applied_at = at
        self.first_applied_at = self.first_applied_at or at

    def approve_application(self, application_id: str, amount: Money | None, at: datetime) -> bool:
        """Record an approval and move the lead to APPROVED."""
        self.check_application(application_id)
        if self.applications[application_id] in (ApplicationStatus.APPROVED, ApplicationStatus.FUNDED):
            return False
        self._application_approved(application_id=application_id, amount=amount, at=at)
        self.advance_to(Stage.APPROVED, f"application {application_id} approved", at)
        return True

    @event(ApplicationApproved)
    def _application_approved(self, application_id: str, amount: Money | None, at: datetime) -> None:
        self.applications[application_id] = ApplicationStatus.APPROVED

    def decline_application(self, application_id: str, reason: str, at: datetime) -> bool:
        """Record a decline; the lead is LOST unless another application is still open."""
        self.check_application(application_id)
        if self.applications[application_id] == ApplicationStatus.DECLINED:
            return False
        self._application_declined(application_id=application_id, reason=reason, at=at)
        if not any(s in OPEN_APPLICATION for s in self.applications.values()):
            self.advance_to(Stage.LOST, f"application {application_id} declined: {reason}", at)
        return True

    @event(ApplicationDeclined)
    def _application_declined(self, application_id: str, reason: str, at: datetime) -> None:
        self.applications[application_id] = ApplicationStatus.DECLINED
        self.last_declined_at = at

    def fund_loan(self, application_id: str, amount: Money | None, at: datetime, term_months: int = 0) -> bool:
        """Record funding (with the term, when known) and move the lead to FUNDED."""
        self.check_application(application_id)
        if self.applications[application_id] == ApplicationStatus.FUNDED:
            return False
        if term_months < 0:
            raise InvalidLeadError("term_months", f"must be 0 (unknown) or more, got {term_months}")
        if amount is None or amount.amount <= 0:  # the reports and the referral rewards add it up
            shown = "nothing" if amount is None else str(amount)
            raise InvalidLeadError("amount", f"a funded loan needs its amount (a number above 0), got {shown}")
        self._loan_funded(
            application_id=application_id,
            amount=amount,
            at=at,
            loan_type=self.application_types.get(application_id, ""),
            term_months=term_months,
        )
        self.advance_to(Stage.FUNDED, f"loan {application_id} funded", at)
        return True

    @event(LoanFunded)
    def _loan_funded(
        self, application_id: str, amount: Money | None, at: datetime, loan_type: str, term_months: int
    ) -> None:
        self.applications[application_id] = ApplicationStatus.FUNDED
        self.last_funded_at = at
        self.loans[application_id] = Loan(
            application_id, loan_type or self.application_types.get(application_id, ""), amount, at, term_months, 0
        )

    def miss_repayment(self, application_id: str, days_past_due: int, at: datetime) -> bool:
        """Record a missed repayment on a funded loan."""
        self.check_application(application_id)
        if self.applications[application_id] != ApplicationStatus.FUNDED:
            raise InvalidLeadError("application_id", f"{application_id} has not been funded")
        self._repayment_missed(application_id=application_id, days_past_due=days_past_due, at=at)
        return True

    @event(RepaymentMissed)
    def _repayment_missed(self, application_id: str, days_past_due: int, at: datetime) -> None:
        self.missed_repayments += 1
        self.last_missed_at = at
        if (loan := self.loans.get(application_id)) is not None:
            self.loans[application_id] = replace(loan, missed=loan.missed + 1)

    def friend_applied(self, referral_id: UUID, at: datetime) -> bool:
        """Record that a referred friend applied (once per referral)."""
        if f"{referral_id}:applied" in self.referral_news:
            return False
        self._friend_applied(referral_id=referral_id, application_id=str(referral_id), at=at)
        return True

    @event(ReferredFriendApplied)
    def _friend_applied(self, referral_id: UUID, application_id: str, at: datetime) -> None:
        self.referral_news.add(f"{referral_id}:applied")

    def referral_rewarded(self, referral_id: UUID, role: str, reward: JSONDict, at: datetime) -> bool:
        """Record a referral reward granted to this lead (once per referral and role)."""
        if f"{referral_id}:rewarded:{role}" in self.referral_news:
            return False
        self._referral_rewarded(
            referral_id=referral_id, application_id=str(referral_id), role=role, reward=reward, at=at
        )
        return True

    @event(ReferralRewarded)
    def _referral_rewarded(
        self, referral_id: UUID, application_id: str, role: str, reward: JSONDict, at: datetime
    ) -> None:
        self.referral_news.add(f"{referral_id}:rewarded:{role}")

    def tag(self, tag: str, reason: str, at: datetime) -> bool:
        """Add a tag (once)."""
        if tag in self.tags:
            return False
        self._tagged(tag=tag, reason=reason, at=at)
        return True

    @event(Tagged)
    def _tagged(self, tag: str, reason: str, at: datetime) -> None:
        self.tags.add(tag)

    def check_application(self, application_id: str) -> None:
        """Raise unless this lead has submitted ``application_id``."""
        if application_id not in self.applications:
            raise InvalidLeadError("application_id", f"no application {application_id!r} was submitted by this lead")


keep_topics("engine.domain.lead", Lead)


#: Clicks a lead keeps for its engagement score (older ones weigh almost nothing).
KEPT_CLICKS = 50


#: What an erasure keeps, and why (lending and consent records the lender must retain; none of it
#: names the person once the data key is gone).
RETAINED = (
    "stage history and lifecycle facts (applications, approvals, loans: amounts and dates) - credit records",
    "consent and opt-out history (channel, purpose, time) - proof of consent",
    "suppression-list entry (keyed hash of phone and e-mail) - never contacted or re-imported again",
    "messages sent (time, channel, template, outcome) - marketing records",
    "scores' bands and product matches (no inputs) - fair-lending monitoring",
)

#: The personal fields of each Lead event, sealed with the lead's own key in the store, and what
#: a reader gets in their place once the lead is erased (crypto-shredding). Everything else —
#: stages, applications, loans, consent channel and time, scores' bands — stays readable, as
#: lending rules require it kept (README: erasure).
PII_FIELDS: dict[type[Any], dict[str, Any]] = {
    Lead.Captured: {"contact": {}, "profile": {}, "interest": {}, "contact_issues": []},
    Lead.ProfileUpdated: {"changes": {}},
    Lead.DataConflicted: {"conflicts": {}},
    Lead.Segmented: {"reasons": {}},
    # The payment and the DTI with the loan together give the income: personal like the inputs.
    Lead.ProductsMatched: {"inputs": {}, "monthly_payment": "", "dti_after": ""},
    Lead.Scored: {"inputs": {}, "reasons": []},
    Lead.ConsentGranted: {"evidence": "(erased)"},
    Lead.ConsentRequested: {"evidence": "(erased)"},
    Lead.ConsentWithdrawn: {"evidence": "(erased)"},
    # The operator's words (they may quote the request): sealed, never on the bus or webhooks.
    Lead.Erased: {"reason": "(sealed)"},
}
#: The key that seals operators' notes (not the lead's own key: the reason an erasure was carried
#: out must stay readable to the lender after it).
OPERATOR_NOTES_KEY = UUID(int=1)
#: Events sealed under a fixed key instead of their lead's.
PII_OWNERS: dict[type[Any], UUID] = {Lead.Erased: OPERATOR_NOTES_KEY}
