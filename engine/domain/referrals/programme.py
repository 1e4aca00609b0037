"""Referral programmes (``referrals.yaml``): per loan type, what the referrer and the referee
get, when a referral qualifies, how long a reward can be clawed back, the caps, who may refer
and who never gets a reward. Validated like journeys: every problem names the programme and
field; a mortgage programme must keep settlement-service providers out (DOMAIN.md, RESPA §8)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from engine.domain.shared.errors import JourneyValidationError
from engine.domain.shared.values import LoanType, Stage

REWARD_KINDS = ("cash", "rate_discount", "fee_waiver")
#: Lead tags that keep a person from being rewarded for referring, unless a programme says otherwise.
DEFAULT_EXCLUDED = ("employee", "commissioned_partner")
SETTLEMENT_PROVIDER = "settlement_service_provider"


@dataclass(frozen=True)
class Reward:
    """What one side gets: cash (``amount`` in ``currency``), a rate discount (``amount``
    percentage points) or a fee waiver (``amount`` fees); ``cost`` is what it costs the lender
    (cash: the amount), counted against the budget and in cost per funded referral."""

    kind: str
    amount: Decimal
    cost: Decimal
    currency: str = "CNY"

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "amount": str(self.amount), "cost": str(self.cost), "currency": self.currency}


@dataclass(frozen=True)
class Programme:
    id: str
    name: str
    loan_types: frozenset[str]
    referrer_reward: Reward
    referee_reward: Reward
    min_funded_amount: Decimal = Decimal(0)
    #: The referee's loan must be funded within this many days of the referral.
    attribution_days: int = 90
    #: A missed repayment within this many days of funding claws both rewards back.
    clawback_days: int = 90
    per_referrer_month: int | None = None
    per_referrer_year: int | None = None
    budget: Decimal | None = None
    #: Stages a referrer must be at (a customer in good standing), and not delinquent.
    referrer_stages: frozenset[str] = frozenset({Stage.FUNDED.value})
    exclude_tags: frozenset[str] = frozenset(DEFAULT_EXCLUDED)
    #: More referrals than this by one referrer in a day are held for review.
    max_referrals_per_day: int = 3
    source: str = ""

    @property
    def reward_cost(self) -> Decimal:
        return self.referrer_reward.cost + self.referee_reward.cost


@dataclass(frozen=True)
class Programmes:
    programmes: tuple[Programme, ...] = ()
    by_id: dict[str, Programme] = field(default_factory=dict)

    def for_loan(self, loan_type: str) -> Programme | None:
        """The programme that rewards referrals funded as ``loan_type`` (at most one does)."""
        return next((p for p in self.programmes if loan_type in p.loan_types), None)


NO_PROGRAMMES = Programmes()


def _decimal(value: Any, where: str, problems: list[str], minimum: Decimal = Decimal(0)) -> Decimal:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        problems.append(f"{where}: expected a number, got {value!r}")
        return minimum
    if not number.is_finite() or number < minimum:
        problems.append(f"{where}: expected a number of at least {minimum}, got {value!r}")
        return minimum
    return number


def _count(value: Any, where: str, problems: list[str], allow_none: bool = True) -> int | None:
    if value is None and allow_none:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        problems.append(f"{where}: expected a whole number (1 or more), got {value!r}")
        return None
    return value


def _reward(raw: Any, where: str, problems: list[str]) -> Reward:
    if not isinstance(raw, dict) or raw.get("kind") not in REWARD_KINDS:
        problems.append(f"{where}: expected {{kind: {' | '.join(REWARD_KINDS)}, amount: N, cost: N}}")
        return Reward("cash", Decimal(0), Decimal(0))
    amount = _decimal(raw.get("amount"), f"{where}.amount", problems)
    if raw["kind"] != "cash" and "cost" not in raw:
        problems.append(f"{where}.cost: a {raw['kind']} needs its cost to the lender (for the budget and ROI)")
        return Reward(raw["kind"], amount, Decimal(0))
    cost = _decimal(raw.get("cost", amount), f"{where}.cost", problems)
    return Reward(raw["kind"], amount, cost, str(raw.get("currency") or "CNY"))


def parse_programmes(data: Any, source: str = "referrals.yaml") -> Programmes:
    """Validate the referral programmes file; every problem names the programme and field."""
    if data is None:
        return NO_PROGRAMMES
    if not isinstance(data, dict) or not isinstance(data.get("programmes"), list):
        raise JourneyValidationError([f"{source}: expected a mapping with a list of programmes"])
    problems: list[str] = []
    found: list[Programme] = []
    loans = {t.value for t in LoanType}
    stages = {s.value for s in Stage}
    for n, raw in enumerate(data["programmes"], 1):
        where = f"{source}: programmes[{n}]"
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str) or not raw["id"]:
            problems.append(f"{where}: expected {{id, name, loan_types, referrer_reward, referee_reward, ...}}")
            continue
        where = f"{source}: programme {raw['id']}"
        loan_types = raw.get("loan_types") or []
        if not isinstance(loan_types, list) or not loan_types or not set(loan_types) <= loans:
            problems.append(f"{where}: loan_types: expected a list of {', '.join(sorted(loans))}")
            loan_types = []
        caps = raw.get("caps") or {}
        referrers = raw.get("referrers") or {}
        exclude = raw.get("exclude", list(DEFAULT_EXCLUDED))
        if not isinstance(exclude, list) or not all(isinstance(t, str) for t in exclude):
            problems.append(f"{where}: exclude: expected a list of lead tags")
            exclude = list(DEFAULT_EXCLUDED)
        referrer_stages = referrers.get("stages", [Stage.FUNDED.value])
        if not isinstance(referrer_stages, list) or not set(referrer_stages) <= stages:
            problems.append(f"{where}: referrers.stages: expected a list of {', '.join(sorted(stages))}")
            referrer_stages = [Stage.FUNDED.value]
        if LoanType.MORTGAGE.value in loan_types and SETTLEMENT_PROVIDER not in exclude:
            problems.append(
                f"{where}: exclude: a mortgage programme must exclude {SETTLEMENT_PROVIDER} (no referral reward to a "
                "settlement-service provider, DOMAIN.md)"
            )
        budget = caps.get("budget")
        per_day = _count(raw.get("max_referrals_per_day", 3), f"{where}: max_referrals_per_day", problems)
        programme = Programme(
            id=raw["id"],
            name=str(raw.get("name") or raw["id"]),
            loan_types=frozenset(loan_types),
            referrer_reward=_reward(raw.get("referrer_reward"), f"{where}: referrer_reward", problems),
            referee_reward=_reward(raw.get("referee_reward"), f"{where}: referee_reward", problems),
            min_funded_amount=_decimal(raw.get("min_funded_amount", 0), f"{where}: min_funded_amount", problems),
            attribution_days=_count(raw.get("attribution_days", 90), f"{where}: attribution_days", problems) or 90,
            clawback_days=_count(raw.get("clawback_days", 90), f"{where}: clawback_days", problems) or 90,
            per_referrer_month=_count(caps.get("per_referrer_month"), f"{where}: caps.per_referrer_month", problems),
            per_referrer_year=_count(caps.get("per_referrer_year"), f"{where}: caps.per_referrer_year", problems),
            budget=None if budget is None else _decimal(budget, f"{where}: caps.budget", problems),
            referrer_stages=frozenset(referrer_stages),
            exclude_tags=frozenset(exclude),
            max_referrals_per_day=per_day or 3,
            source=source,
        )
        if any(p.id == programme.id for p in found):
            problems.append(f"{where}: defined twice")
        for other in found:
            if shared := programme.loan_types & other.loan_types:
                problems.append(f"{where}: loan_types {', '.join(sorted(shared))} already in programme {other.id}")
        found.append(programme)
    if problems:
        raise JourneyValidationError(problems)
    return Programmes(tuple(found), {p.id: p for p in found})
