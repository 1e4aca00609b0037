"""A referral and its reward, as events with their reasons: recorded (by which rule), qualified
or not when the referee's loan is funded, held for review when a fraud check flags it, approved
or rejected by a reviewer, capped, paid (both sides, once), clawed back. Its id derives from the
referee, so the first referral of a referee is the only one (a later one is a refused attempt)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from engine.domain.shared.errors import ReferralStateError
from engine.domain.shared.money import Money, stored_amount
from engine.domain.shared.topics import keep_topics

REFERRAL_NAMESPACE = UUID("5b8f3f0e-7a51-4c1e-9d0c-2f4c8f7b9a11")


def referral_id(referee_id: UUID) -> UUID:
    return uuid5(REFERRAL_NAMESPACE, f"referral:{referee_id}")


def attempt_id(referee_id: UUID, code: str, at: datetime) -> UUID:
    return uuid5(REFERRAL_NAMESPACE, f"attempt:{referee_id}:{code}:{at.isoformat()}")


class Referral(Aggregate):
    """One referee's referral: from recorded to paid (or not), with every reason."""

    class Recorded(Aggregate.Created):
        referee_id: UUID
        referrer_id: UUID
        code: str
        rule: str
        at: datetime

    class RefereeApplied(Aggregate.Event):
        application_id: str
        at: datetime

    class Qualified(Aggregate.Event):
        """v2: the friend's funded amount as Money."""

        class_version = 2
        programme: str
        application_id: str
        amount: Money | None
        at: datetime

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["amount"] = stored_amount(state["amount"])

    class NotQualified(Aggregate.Event):
        """v2 records the funded amount (a funded referral counts in every report, rewarded or
        not; v1 did not say how much); v3 as Money (None: not recorded)."""

        class_version = 3
        programme: str
        reason: str
        amount: Money | None
        at: datetime

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["amount"] = ""  # funded, amount not recorded

        @staticmethod
        def upcast_v2_v3(state: dict[str, Any]) -> None:
            state["amount"] = stored_amount(state["amount"])

    class Held(Aggregate.Event):
        reasons: list[str]
        at: datetime

    class Approved(Aggregate.Event):
        by: str
        note: str
        at: datetime

    class Rejected(Aggregate.Event):
        by: str
        note: str
        at: datetime

    class Capped(Aggregate.Event):
        reason: str
        at: datetime

    class Paid(Aggregate.Event):
        referrer_reward: dict[str, Any]
        referee_reward: dict[str, Any]
        at: datetime

    class ClawedBack(Aggregate.Event):
        reason: str
        at: datetime

    @staticmethod
    def create_id(referee_id: UUID, referrer_id: UUID, code: str, rule: str, at: datetime) -> UUID:
        return referral_id(referee_id)

    @event(Recorded)
    def __init__(self, referee_id: UUID, referrer_id: UUID, code: str, rule: str, at: datetime) -> None:
        self.referee_id = referee_id
        self.referrer_id = referrer_id
        self.code = code
        self.referred_at = at
        self.status = "recorded"
        self.programme = ""
        self.funded_at: datetime | None = None
        self.amount: Money | None = None
        self.reasons: list[str] = []
        self.rewards: dict[str, Any] = {}
        self.paid_at: datetime | None = None
        self.applied = False

    def referee_applied(self, application_id: str, at: datetime) -> bool:
        """The referee applied for a loan (recorded once: the referrer is thanked once)."""
        if self.applied:
            return False
        self._referee_applied(application_id=application_id, at=at)
        return True

    @event(RefereeApplied)
    def _referee_applied(self, application_id: str, at: datetime) -> None:
        self.applied = True

    def _expect(self, *statuses: str) -> None:
        if self.status not in statuses:
            raise ReferralStateError(f"referral {self.id} is {self.status}, not {' or '.join(statuses)}")

    @event(Qualified)
    def qualify(self, programme: str, application_id: str, amount: Money | None, at: datetime) -> None:
        self.status, self.programme, self.amount, self.funded_at = "qualified", programme, amount, at

    @event(NotQualified)
    def disqualify(self, programme: str, reason: str, amount: Money | None, at: datetime) -> None:
        """The friend's loan (``amount``) was funded, but the referral earns no reward."""
        self.status, self.programme, self.reasons = "not_qualified", programme, [reason]
        self.amount, self.funded_at = amount, at

    @event(Held)
    def hold(self, reasons: list[str], at: datetime) -> None:
        self.status, self.reasons = "held", list(reasons)

    def approve(self, by: str, note: str, at: datetime) -> None:
        self._expect("held")
        self._approved(by=by, note=note, at=at)

    @event(Approved)
    def _approved(self, by: str, note: str, at: datetime) -> None:
        self.status = "approved"

    def reject(self, by: str, note: str, at: datetime) -> None:
        self._expect("held")
        if not note.strip():
            raise ReferralStateError("a rejection needs a note (why, for the referrer's complaint)")
        self._rejected(by=by, note=note, at=at)

    @event(Rejected)
    def _rejected(self, by: str, note: str, at: datetime) -> None:
        self.status, self.reasons = "rejected", [*self.reasons, note]

    @event(Capped)
    def cap(self, reason: str, at: datetime) -> None:
        self.status, self.reasons = "capped", [reason]

    def pay(self, referrer_reward: dict[str, Any], referee_reward: dict[str, Any], at: datetime) -> None:
        self._expect("qualified", "approved")
        self._paid(referrer_reward=referrer_reward, referee_reward=referee_reward, at=at)

    @event(Paid)
    def _paid(self, referrer_reward: dict[str, Any], referee_reward: dict[str, Any], at: datetime) -> None:
        self.status, self.rewards, self.paid_at = "paid", {"referrer": referrer_reward, "referee": referee_reward}, at

    def claw_back(self, reason: str, at: datetime) -> None:
        self._expect("paid")
        self._clawed_back(reason=reason, at=at)

    @event(ClawedBack)
    def _clawed_back(self, reason: str, at: datetime) -> None:
        self.status, self.reasons = "clawed_back", [reason]


class ReferralAttempt(Aggregate):
    """A referral that was not recorded, with the rule that refused it."""

    class Refused(Aggregate.Created):
        referee_id: UUID
        referrer_id: str
        code: str
        reason: str
        at: datetime

    @staticmethod
    def create_id(referee_id: UUID, referrer_id: str, code: str, reason: str, at: datetime) -> UUID:
        return attempt_id(referee_id, code, at)

    @event(Refused)
    def __init__(self, referee_id: UUID, referrer_id: str, code: str, reason: str, at: datetime) -> None:
        self.referee_id, self.referrer_id, self.code, self.reason = referee_id, referrer_id, code, reason


class ReferralCode(Aggregate):
    """Index: a referral code → the lead it belongs to (claimed when the lead is first seen)."""

    class Claimed(Aggregate.Created):
        code: str
        lead_id: UUID

    @staticmethod
    def create_id(code: str, lead_id: UUID) -> UUID:
        return code_id(code)

    @event(Claimed)
    def __init__(self, code: str, lead_id: UUID) -> None:
        self.code, self.lead_id = code, lead_id


def code_id(code: str) -> UUID:
    return uuid5(REFERRAL_NAMESPACE, f"code:{code}")


def referrer_id(lead_id: UUID) -> UUID:
    return uuid5(REFERRAL_NAMESPACE, f"referrer:{lead_id}")


def budget_id(programme: str) -> UUID:
    return uuid5(REFERRAL_NAMESPACE, f"budget:{programme}")


class Referrer(Aggregate):
    """One referrer's referrals and rewards: what velocity, rings and caps are counted on."""

    class Started(Aggregate.Created):
        lead_id: UUID

    class Referred(Aggregate.Event):
        referee_id: UUID
        at: datetime

    class Rewarded(Aggregate.Event):
        referral_id: UUID
        programme: str
        cost: str
        at: datetime

    class RewardClawedBack(Aggregate.Event):
        referral_id: UUID
        at: datetime

    @staticmethod
    def create_id(lead_id: UUID) -> UUID:
        return referrer_id(lead_id)

    @event(Started)
    def __init__(self, lead_id: UUID) -> None:
        self.lead_id = lead_id
        self.referees: list[tuple[UUID, datetime]] = []
        self.rewards: dict[UUID, datetime] = {}

    @event(Referred)
    def referred(self, referee_id: UUID, at: datetime) -> None:
        self.referees.append((referee_id, at))

    @event(Rewarded)
    def rewarded(self, referral_id: UUID, programme: str, cost: str, at: datetime) -> None:
        self.rewards[referral_id] = at

    @event(RewardClawedBack)
    def clawed_back(self, referral_id: UUID, at: datetime) -> None:
        self.rewards.pop(referral_id, None)

    def referred_on(self, day: Any, tz: Any) -> int:
        return sum(1 for _, at in self.referees if at.astimezone(tz).date() == day)

    def rewarded_in(self, now: datetime, tz: Any) -> tuple[int, int]:
        """Rewards kept (not clawed back) in ``now``'s month and year."""
        local = now.astimezone(tz)
        dates = [at.astimezone(tz) for at in self.rewards.values()]
        month = sum(1 for d in dates if (d.year, d.month) == (local.year, local.month))
        return month, sum(1 for d in dates if d.year == local.year)


class ProgrammeBudget(Aggregate):
    """What a programme has spent on rewards (both sides' cost), less what was clawed back."""

    class Opened(Aggregate.Created):
        programme: str

    class Spent(Aggregate.Event):
        referral_id: UUID
        cost: str
        at: datetime

    class Refunded(Aggregate.Event):
        referral_id: UUID
        cost: str
        at: datetime

    @staticmethod
    def create_id(programme: str) -> UUID:
        return budget_id(programme)

    @event(Opened)
    def __init__(self, programme: str) -> None:
        self.programme = programme
        self.spent = Decimal(0)

    @event(Spent)
    def spend(self, referral_id: UUID, cost: str, at: datetime) -> None:
        self.spent += Decimal(cost)

    @event(Refunded)
    def refund(self, referral_id: UUID, cost: str, at: datetime) -> None:
        self.spent -= Decimal(cost)


keep_topics("engine.domain.referrals.referral", Referral, ReferralAttempt, ReferralCode, Referrer, ProgrammeBudget)

#: What a referral's ledger row is made of: the refused attempts and each step of a referral.
LEDGER_EVENTS: tuple[type[Any], ...] = (
    ReferralAttempt.Refused,
    Referral.Recorded,
    Referral.RefereeApplied,
    Referral.Qualified,
    Referral.NotQualified,
    Referral.Held,
    Referral.Approved,
    Referral.Rejected,
    Referral.Capped,
    Referral.Paid,
    Referral.ClawedBack,
)
