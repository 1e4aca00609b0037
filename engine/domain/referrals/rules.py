"""The referral decisions, pure: attribution (who referred whom, by which rule), qualification
(funded enough, soon enough), the referrer's standing, fraud flags (each with its reason),
caps and budget, and clawback. Each returns the reason in words a finance or fraud reviewer
reads; nothing here reads a store or a clock."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from uuid import UUID

from engine.domain.referrals.programme import Programme


@dataclass(frozen=True)
class Person:
    """What the rules read about a referrer or a referee."""

    lead_id: UUID
    name: str = ""
    birth_year: int | None = None
    phones: frozenset[str] = frozenset()
    emails: frozenset[str] = frozenset()
    address: str = ""
    device: str = ""
    stage: str = ""
    delinquent: bool = False
    tags: frozenset[str] = field(default_factory=frozenset)
    captured_at: datetime | None = None

    def shared_with(self, other: Person) -> list[str]:
        """The contact details both people have (each named once, values never shown)."""
        shared = []
        if self.phones & other.phones:
            shared.append("phone")
        if self.emails & other.emails:
            shared.append("e-mail")
        if self.address and _norm(self.address) == _norm(other.address):
            shared.append("address")
        if self.device and self.device == other.device:
            shared.append("device")
        return shared


def _norm(text: str) -> str:
    return "".join(text.lower().split())


@dataclass(frozen=True)
class Attribution:
    """Whether a referral is recorded, and the rule that decided it."""

    recorded: bool
    rule: str


def attribute(
    code: str,
    referrer: UUID | None,
    referee: UUID,
    referred_at: datetime,
    referee_captured_at: datetime | None,
    existing_referrer: UUID | None,
) -> Attribution:
    """A referee arrived with ``code`` (belonging to ``referrer``, None if no lead has it) at
    ``referred_at``. First referral wins; a referee who was already a known lead before the
    referral is nobody's referral; a code is nobody's referral of its own lead."""
    if referrer is None:
        return Attribution(False, f"code {code} belongs to no lead")
    if referrer == referee:
        return Attribution(False, "self-referral: the code is the referee's own")
    if existing_referrer is not None:
        return Attribution(False, f"first referral wins: already referred by lead {existing_referrer}")
    if referee_captured_at is not None and referee_captured_at < referred_at - timedelta(minutes=1):
        return Attribution(
            False, f"the referee was already a known lead (captured {referee_captured_at:%Y-%m-%d}) before the referral"
        )
    return Attribution(True, f"valid code {code} of lead {referrer}; first referral of a new lead")


def qualification_refusal(programme: Programme, amount: Decimal, referred_at: datetime, funded_at: datetime) -> str:
    """Why a funded referee loan does not qualify ('' when it does)."""
    if amount < programme.min_funded_amount:
        return f"funded {amount:,} is below the programme's minimum of {programme.min_funded_amount:,}"
    days = (funded_at - referred_at) / timedelta(days=1)
    if days > programme.attribution_days:
        return f"funded {days:.0f} days after the referral; the programme's window is {programme.attribution_days} days"
    return ""


def referrer_refusal(programme: Programme, referrer: Person) -> str:
    """Why this referrer may not be rewarded in ``programme`` ('' when they may)."""
    excluded = sorted(referrer.tags & programme.exclude_tags)
    if excluded:
        return f"the referrer is excluded from rewards ({', '.join(excluded)})"
    if referrer.stage not in programme.referrer_stages:
        allowed = ", ".join(sorted(programme.referrer_stages))
        return f"the referrer is at stage {referrer.stage or 'unknown'}; only {allowed} customers may refer"
    if referrer.delinquent:
        return "the referrer is delinquent (a missed repayment is outstanding)"
    return ""


def fraud_flags(
    programme: Programme,
    referrer: Person,
    referee: Person,
    referrals_that_day: int,
    referee_referred_referrer: bool,
    other_referees: Sequence[Person] = (),
) -> list[str]:
    """Every reason to hold the reward for review (empty when nothing looks wrong)."""
    flags = []
    if shared := referrer.shared_with(referee):
        flags.append(f"referrer and referee share {' and '.join(shared)}")
    if (
        referrer.name
        and _norm(referrer.name) == _norm(referee.name)
        and referrer.birth_year is not None
        and referrer.birth_year == referee.birth_year
    ):
        flags.append("possible self-referral under a second identity: same name and birth year")
    if referrals_that_day > programme.max_referrals_per_day:
        flags.append(
            f"velocity: {referrals_that_day} referrals by this referrer that day "
            f"(more than {programme.max_referrals_per_day})"
        )
    if referee_referred_referrer:
        flags.append("ring: the referee referred the referrer")
    for other in other_referees:
        if other.lead_id != referee.lead_id and (shared := referee.shared_with(other)):
            flags.append(f"shares {' and '.join(shared)} with another referee of this referrer (lead {other.lead_id})")
    return flags


def cap_refusal(programme: Programme, paid_this_month: int, paid_this_year: int, budget_spent: Decimal) -> str:
    """Why one more reward would break a cap or the budget ('' when it fits)."""
    if programme.per_referrer_month is not None and paid_this_month >= programme.per_referrer_month:
        return f"the referrer was rewarded {paid_this_month} times this month (cap {programme.per_referrer_month})"
    if programme.per_referrer_year is not None and paid_this_year >= programme.per_referrer_year:
        return f"the referrer was rewarded {paid_this_year} times this year (cap {programme.per_referrer_year})"
    if programme.budget is not None and budget_spent + programme.reward_cost > programme.budget:
        left = programme.budget - budget_spent
        return f"the programme's budget has {left:,} left; this reward costs {programme.reward_cost:,}"
    return ""


def clawback_due(programme: Programme, funded_at: datetime, missed_at: datetime) -> bool:
    """A missed repayment within the clawback window claws the rewards back."""
    return funded_at <= missed_at <= funded_at + timedelta(days=programme.clawback_days)
