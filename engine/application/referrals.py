"""Referral rewards as a reactor on the leads log (store ``referrals``): every new lead's code is
indexed; a lead that arrives with a referral code is attributed (or refused, with the rule); a
referee's funded loan qualifies the referral, passes the referrer's standing, the fraud checks
(a flag holds it for review), the caps and the budget, and pays both sides once; a missed
repayment inside the clawback window claws both rewards back.

One process decides referrals (the owner of lead partition 0), in log order, so a referrer's
capture is always seen before its referees' and caps are counted by one writer; each page of
decisions is saved with the log position in one transaction, so a crash while rewarding never
pays twice and a re-imported file changes nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any, ClassVar, TypeVar
from uuid import UUID
from zoneinfo import ZoneInfo

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.utils import get_topic

from engine.application.partitions import ALL, Partitions, Stop, never
from engine.application.ports import Clock
from engine.application.projecting import drain, matching_notifications, next_page
from engine.domain.leads.lead import Lead
from engine.domain.referrals.codes import read_code, referral_code
from engine.domain.referrals.ledger import fold_into_row, ledger_row
from engine.domain.referrals.programme import NO_PROGRAMMES, Programme, Programmes
from engine.domain.referrals.referral import (
    LEDGER_EVENTS,
    ProgrammeBudget,
    Referral,
    ReferralAttempt,
    ReferralCode,
    Referrer,
    budget_id,
    code_id,
    referral_id,
    referrer_id,
)
from engine.domain.referrals.rules import (
    Person,
    attribute,
    cap_refusal,
    clawback_due,
    fraud_flags,
    qualification_refusal,
    referrer_refusal,
)
from engine.domain.shared.errors import HuokeError
from engine.eventstore import ProcessRecorder, Tracking
from engine.eventstore.saving import (
    decode_page,
    fresh_get,
    latest_versions,
    recent_events,
    retry_conflicts,
    save_batch,
)
from engine.eventstore.values import StoreApplication

LEAD_TOPICS = [
    get_topic(c)
    for c in (Lead.Captured, Lead.ProfileUpdated, Lead.ApplicationSubmitted, Lead.LoanFunded, Lead.RepaymentMissed)
]
#: A referral reported after the friend's first contact counts within this many days of it.
REPORT_WITHIN_DAYS = 30
#: Other referees of a referrer compared with a new one (the most recent).
SIBLINGS = 20
A = TypeVar("A")


def person(lead: Lead) -> Person:
    """What the referral rules read about a lead."""
    contact, profile = lead.contact, lead.profile
    return Person(
        lead_id=lead.id,
        name=str(contact.get("name") or ""),
        birth_year=profile.get("birth_year"),
        phones=frozenset(p for p in [contact.get("phone")] if p),
        emails=frozenset(e.lower() for e in [contact.get("email")] if e),
        address=str(profile.get("address") or ""),
        device=str(contact.get("device") or ""),
        stage=lead.stage.value,
        delinquent=getattr(lead, "missed_repayments", 0) > 0,
        tags=frozenset(lead.tags),
        captured_at=lead.captured_at,
    )


@dataclass
class Batch:
    """Aggregates decided in one page (saved together with the log position)."""

    app: Referrals
    pending: dict[UUID, Any] = field(default_factory=dict)
    #: Aggregates known to have no events yet (``get`` needs no read for them).
    absent: set[UUID] = field(default_factory=set)

    def look_for(self, aggregate_ids: list[UUID]) -> None:
        """Find out in one query which of these aggregates exist (each new lead's code does not)."""
        found = latest_versions(self.app, aggregate_ids)
        self.absent.update(i for i in aggregate_ids if i not in found)

    def get(self, aggregate_id: UUID, kind: type[A]) -> A | None:
        if aggregate_id in self.pending:
            found: A = self.pending[aggregate_id]
            return found
        if aggregate_id in self.absent:
            return None
        try:
            loaded: A = self.app.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None
        return loaded

    def add(self, aggregate: Any) -> Any:
        self.pending[aggregate.id] = aggregate
        return aggregate


class Referrals(StoreApplication):
    """Referrals, their rewards, and the code index."""

    name = "Referrals"
    snapshotting_intervals: ClassVar[dict[type[Any], int]] = {Referrer: 50, ProgrammeBudget: 100}
    recorder: ProcessRecorder

    def __init__(
        self,
        env: dict[str, str],
        clock: Clock,
        code_key: bytes,
        programmes: Programmes = NO_PROGRAMMES,
        default_tz: str = "Asia/Shanghai",
        public_url: str = "",
    ) -> None:
        super().__init__(env)
        self.clock = clock
        self.code_key = code_key
        self.programmes = programmes
        self.tz = ZoneInfo(default_tz)
        self.public_url = public_url

    def construct_recorder(self) -> ProcessRecorder:
        return self.factory.process_recorder()

    def finished(self, aggregate: Any) -> bool:
        """Every lead gets a code; few codes are ever used: the store serves those."""
        return isinstance(aggregate, ReferralCode)

    # ---- codes ---------------------------------------------------------------------------

    def code_of(self, lead_id: UUID) -> str:
        return referral_code(self.code_key, lead_id)

    def process_lead_events(
        self, leads: Any, parts: Partitions = ALL, batch_size: int = 500, stop: Stop = never
    ) -> int:
        """Decide what new lead events mean for referrals (only in the process that owns lead
        partition 0); the number of lead events read."""
        if not parts.everything and 0 not in parts.owned:
            return 0
        return drain(lambda: retry_conflicts(self, lambda: self._page(leads, batch_size)), stop)

    def _page(self, leads: Any, batch_size: int) -> int | None:
        position = self.recorder.max_tracking_id(leads.name)
        page = next_page(leads.recorder, position, LEAD_TOPICS, batch_size)
        if page is None:
            return None
        batch = Batch(self)
        # Sealed fields shut: what referrals read of a lead event (its source, times, loans) is
        # never personal; the person's details for the fraud checks come from the lead itself.
        events = decode_page(leads.mapper, page.notes, personal=False, recent=recent_events(leads))
        batch.look_for([code_id(self.code_of(e.originator_id)) for e in events if isinstance(e, Lead.Captured)])
        for event in events:
            self._react(event, leads, batch)
        save_batch(self, batch.pending.values(), Tracking(leads.name, page.last))
        return len(page.notes)

    def _react(self, e: Any, leads: Any, batch: Batch) -> None:
        if isinstance(e, Lead.Captured):
            code = self.code_of(e.originator_id)
            if batch.get(code_id(code), ReferralCode) is None:  # a collision keeps the first owner
                batch.add(ReferralCode(code=code, lead_id=e.originator_id))
            if e.source.get("referral_code"):
                self._attribute(str(e.source["referral_code"]), e.originator_id, e.captured_at, e.captured_at, batch)
        elif isinstance(e, Lead.ProfileUpdated) and (e.source or {}).get("referral_code"):
            lead = leads.get_lead(e.originator_id)
            self._attribute(str(e.source["referral_code"]), e.originator_id, e.at, lead.captured_at, batch)
        elif isinstance(e, Lead.ApplicationSubmitted):
            referral = batch.get(referral_id(e.originator_id), Referral)
            if referral is not None and referral.referee_applied(e.application_id, e.at):
                batch.add(referral)
        elif isinstance(e, Lead.LoanFunded):
            self._funded(e, leads, batch)
        elif isinstance(e, Lead.RepaymentMissed):
            self._missed(e, batch)

    def _attribute(self, typed: str, referee: UUID, at: datetime, captured_at: datetime, batch: Batch) -> None:
        code = read_code(typed) or typed.strip()[:40]
        owner = batch.get(code_id(code), ReferralCode) if read_code(typed) else None
        existing = batch.get(referral_id(referee), Referral)
        if existing is not None and existing.code == code and existing.referred_at == at:
            return  # the same event read again
        shown = code if owner is not None else typed.strip()[:40]  # an unknown code, as it was typed
        first = existing.referrer_id if existing else None
        verdict = attribute(shown, owner.lead_id if owner else None, referee, at, captured_at, first)
        if not verdict.recorded:
            refused_by = str(owner.lead_id) if owner else ""
            batch.add(
                ReferralAttempt(referee_id=referee, referrer_id=refused_by, code=code, reason=verdict.rule, at=at)
            )
            return
        assert owner is not None  # noqa: S101 - attribute() records only a known owner
        batch.add(Referral(referee_id=referee, referrer_id=owner.lead_id, code=code, rule=verdict.rule, at=at))
        referrer = batch.get(referrer_id(owner.lead_id), Referrer) or batch.add(Referrer(lead_id=owner.lead_id))
        referrer.referred(referee, at)
        batch.add(referrer)

    def _funded(self, e: Any, leads: Any, batch: Batch) -> None:
        referral = batch.get(referral_id(e.originator_id), Referral)
        if referral is None or referral.status != "recorded":
            return
        batch.add(referral)
        referee = leads.get_lead(e.originator_id)
        loan_type = e.loan_type or str(referee.interest.get("loan_type") or "")
        programme = self.programmes.for_loan(loan_type)
        if programme is None:
            referral.disqualify("", f"no referral programme rewards {loan_type or 'this'} loans", e.amount, e.at)
            return
        funded = e.amount.amount if e.amount else Decimal(0)
        refusal = qualification_refusal(programme, funded, referral.referred_at, e.at)
        referrer = person(leads.get_lead(referral.referrer_id))
        refusal = refusal or referrer_refusal(programme, referrer)
        if refusal:
            referral.disqualify(programme.id, refusal, e.amount, e.at)
            return
        referral.qualify(programme.id, e.application_id, e.amount, e.at)
        flags = self._flags(programme, referral, referrer, person(referee), leads, batch)
        if flags:
            referral.hold(flags, e.at)
            return
        self._reward(programme, referral, batch, e.at)

    def suspicion(self, referral: Referral, leads: Any) -> list[str]:
        """The fraud flags this referral's reward would be held for, judged now (before the
        friend's loan is funded): news of the friend is not sent to a referrer the lender would
        not thank (a second identity, a ring, a burst of referrals)."""
        try:
            referee = leads.get_lead(referral.referee_id)
            referrer = leads.get_lead(referral.referrer_id)
        except HuokeError:
            return []
        programme = self.programmes.for_loan(str(referee.interest.get("loan_type") or ""))
        if programme is None:
            return []
        return self._flags(programme, referral, person(referrer), person(referee), leads, Batch(self))

    def _flags(
        self, programme: Programme, referral: Referral, referrer: Person, referee: Person, leads: Any, batch: Batch
    ) -> list[str]:
        record = batch.get(referrer_id(referral.referrer_id), Referrer)
        that_day = record.referred_on(referral.referred_at.astimezone(self.tz).date(), self.tz) if record else 0
        referee_as_referrer = batch.get(referrer_id(referral.referee_id), Referrer)
        ring = referee_as_referrer is not None and any(
            r == referral.referrer_id for r, _ in referee_as_referrer.referees
        )
        siblings = []
        for other, _ in (record.referees if record else [])[-SIBLINGS:]:
            if other != referral.referee_id:
                try:
                    siblings.append(person(leads.get_lead(other)))
                except HuokeError:
                    continue
        return fraud_flags(programme, referrer, referee, that_day, ring, siblings)

    def _reward(self, programme: Programme, referral: Referral, batch: Batch, at: datetime) -> None:
        """Pay both sides unless a cap or the budget stops it."""
        record = batch.get(referrer_id(referral.referrer_id), Referrer) or batch.add(
            Referrer(lead_id=referral.referrer_id)
        )
        budget = batch.get(budget_id(programme.id), ProgrammeBudget) or batch.add(
            ProgrammeBudget(programme=programme.id)
        )
        month, year = record.rewarded_in(at, self.tz)
        refusal = cap_refusal(programme, month, year, budget.spent)
        if refusal:
            referral.cap(refusal, at)
            return
        referral.pay(programme.referrer_reward.as_dict(), programme.referee_reward.as_dict(), at)
        record.rewarded(referral.id, programme.id, str(programme.reward_cost), at)
        budget.spend(referral.id, str(programme.reward_cost), at)
        batch.add(record)
        batch.add(budget)

    def _missed(self, e: Any, batch: Batch) -> None:
        referral = batch.get(referral_id(e.originator_id), Referral)
        if referral is None or referral.status != "paid" or referral.funded_at is None:
            return
        programme = self.programmes.by_id.get(referral.programme)
        if programme is None or not clawback_due(programme, referral.funded_at, e.at):
            return
        days = (e.at - referral.funded_at).days
        referral.claw_back(
            f"the referee missed a repayment {days} days after funding (window {programme.clawback_days})", e.at
        )
        record = batch.get(referrer_id(referral.referrer_id), Referrer)
        budget = batch.get(budget_id(programme.id), ProgrammeBudget)
        for aggregate in (referral, record, budget):
            if aggregate is not None:
                batch.add(aggregate)
        if record is not None:
            record.clawed_back(referral.id, e.at)
        if budget is not None:
            budget.refund(referral.id, str(programme.reward_cost), e.at)

    # ---- reported later -----------------------------------------------------------------------

    def report(self, referee_id: UUID, code: str, leads: Any) -> Any:
        """A referral reported after the friend's first contact (they told an agent who sent them):
        judged as of that first contact, if reported within ``REPORT_WITHIN_DAYS`` of it; a loan
        the friend already has funded is judged at once. The Referral, or the refused attempt."""

        def attempt() -> Any:
            batch = Batch(self)
            lead = leads.fresh_lead(referee_id)
            now = self.clock.now()
            days = (now - lead.captured_at) / timedelta(days=1)
            if days > REPORT_WITHIN_DAYS:
                reason = (
                    f"reported {days:.0f} days after the friend's first contact; a referral may be reported "
                    f"within {REPORT_WITHIN_DAYS} days"
                )
                result: Any = batch.add(
                    ReferralAttempt(referee_id=referee_id, referrer_id="", code=code, reason=reason, at=now)
                )
            else:
                self._attribute(code, referee_id, lead.captured_at, lead.captured_at, batch)
                result = (
                    batch.pending.get(referral_id(referee_id))
                    or next(iter(batch.pending.values()), None)
                    or batch.get(referral_id(referee_id), Referral)
                )
                for loan in lead.funded_loans():  # funded before the report
                    funded = SimpleNamespace(
                        originator_id=referee_id,
                        application_id=loan.application_id,
                        amount=loan.amount,
                        loan_type=loan.loan_type,
                        at=loan.funded_at,
                    )
                    self._funded(funded, leads, batch)
            save_batch(self, batch.pending.values())
            return result

        return retry_conflicts(self, attempt)

    # ---- review -------------------------------------------------------------------------------

    def decide(self, ref: str, approve: bool, by: str, note: str, leads: Any) -> Referral:
        """A reviewer's decision on a held reward: approved (then paid unless a cap stops it) or
        rejected with a note."""
        referral = self.find(ref)

        def attempt() -> Referral:
            batch = Batch(self)
            found: Referral = fresh_get(self, referral.id)
            batch.add(found)
            now = self.clock.now()
            if approve:
                found.approve(by, note, now)
                programme = self.programmes.by_id.get(found.programme)
                if programme is None:
                    raise HuokeError(f"programme {found.programme!r} is no longer in referrals.yaml")
                self._reward(programme, found, batch, now)
            else:
                found.reject(by, note, now)
            save_batch(self, batch.pending.values())
            return found

        return retry_conflicts(self, attempt)

    def find(self, ref: str) -> Referral:
        """A referral by id, id prefix, or the referee's lead id."""
        ref = ref.strip().lower()
        for row in self.ledger():
            if row["referral_id"].startswith(ref) or row["referee_id"] == ref:
                found: Referral = fresh_get(self, UUID(row["referral_id"]))
                return found
        raise HuokeError(f"no referral {ref!r}: see huoke referrals ledger")

    # ---- the ledger ---------------------------------------------------------------------------

    def ledger(self) -> list[dict[str, Any]]:
        """Every referral (and refused attempt) with its state now, in the order recorded."""
        rows: dict[UUID, dict[str, Any]] = {}
        for note in matching_notifications(self.recorder, [get_topic(c) for c in LEDGER_EVENTS]):
            e = self.mapper.to_domain_event(note)
            if isinstance(e, ReferralAttempt.Refused):
                rows[e.originator_id] = ledger_row(
                    e.originator_id, e.referee_id, e.referrer_id, e.code, "refused", e.at
                )
                rows[e.originator_id]["reasons"] = [e.reason]
                continue
            if isinstance(e, Referral.Recorded):
                rows[e.originator_id] = ledger_row(
                    e.originator_id, e.referee_id, e.referrer_id, e.code, "recorded", e.at
                )
                rows[e.originator_id]["rule"] = e.rule
                continue
            row = rows.get(e.originator_id)
            if row is None:
                continue
            fold_into_row(row, e)
        return list(rows.values())
