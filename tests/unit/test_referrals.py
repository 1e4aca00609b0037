"""Referral rules at their boundaries: codes, programme validation (the mortgage exclusion),
attribution, qualification windows, the referrer's standing, each fraud check, caps and budget,
clawback, and the referral's life as events (paid once, never twice)."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID, uuid4

import pytest
import yaml

from engine.domain.referrals.codes import CROCKFORD, read_code, referral_code
from engine.domain.referrals.programme import parse_programmes
from engine.domain.referrals.referral import Referral, ReferralAttempt, referral_id
from engine.domain.referrals.rules import (
    Person,
    attribute,
    cap_refusal,
    clawback_due,
    fraud_flags,
    qualification_refusal,
    referrer_refusal,
)
from engine.domain.shared.errors import JourneyValidationError, ReferralStateError
from engine.domain.shared.money import Money

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)
KEY = b"test-referral-key-0123456789abcdef"
PROGRAMMES = """
programmes:
  - id: friends
    name: Friends get 200
    loan_types: [consumer, auto]
    referrer_reward: {kind: cash, amount: 200}
    referee_reward: {kind: rate_discount, amount: 0.25, cost: 150}
    min_funded_amount: 20000
    attribution_days: 60
    clawback_days: 90
    caps: {per_referrer_month: 2, per_referrer_year: 5, budget: 1000}
    max_referrals_per_day: 3
  - id: homes
    loan_types: [mortgage]
    referrer_reward: {kind: fee_waiver, amount: 1, cost: 800}
    referee_reward: {kind: fee_waiver, amount: 1, cost: 800}
    exclude: [employee, commissioned_partner, settlement_service_provider]
"""


def programmes(text: str = PROGRAMMES) -> object:
    return parse_programmes(yaml.safe_load(textwrap.dedent(text)))


FRIENDS = parse_programmes(yaml.safe_load(PROGRAMMES)).by_id["friends"]


def test_codes_are_stable_distinct_readable_and_forgiving() -> None:
    a, b = uuid4(), uuid4()
    code = referral_code(KEY, a)
    assert code == referral_code(KEY, a) and code != referral_code(KEY, b) and code != referral_code(b"other", a)
    assert len(code) == 8 and set(code) <= set(CROCKFORD)
    typed = f" {code[:4].lower()}-{code[4:]} ".replace("1", "l").replace("0", "o")
    assert read_code(typed) == code
    assert read_code("ABC") is None and read_code("ABCDEFGU") is None  # too short; U is not Crockford


def test_programmes_are_validated_and_a_mortgage_programme_must_exclude_settlement_providers() -> None:
    loaded = parse_programmes(yaml.safe_load(PROGRAMMES))
    assert loaded.for_loan("auto") is loaded.by_id["friends"] and loaded.for_loan("business") is None
    assert FRIENDS.reward_cost == Decimal(350)
    bad = PROGRAMMES.replace("    exclude: [employee, commissioned_partner, settlement_service_provider]\n", "")
    with pytest.raises(JourneyValidationError, match="must exclude settlement_service_provider"):
        parse_programmes(yaml.safe_load(bad))
    with pytest.raises(JourneyValidationError) as e:
        parse_programmes(
            yaml.safe_load(PROGRAMMES.replace("cost: 150", "").replace("[consumer, auto]", "[consumer, boat]"))
        )
    assert any("loan_types" in p for p in e.value.problems)
    assert any("referee_reward.cost: a rate_discount needs its cost" in p for p in e.value.problems)
    twice = PROGRAMMES.replace("loan_types: [mortgage]", "loan_types: [mortgage, auto]")
    with pytest.raises(JourneyValidationError, match="auto already in programme friends"):
        parse_programmes(yaml.safe_load(twice))


def test_attribution_rules() -> None:
    referrer, referee = uuid4(), uuid4()
    assert attribute("ABCD1234", referrer, referee, T0, T0, None).recorded
    assert attribute("ABCD1234", referrer, referee, T0, T0, None).rule.startswith("valid code ABCD1234")
    assert attribute("ABCD1234", None, referee, T0, T0, None).rule == "code ABCD1234 belongs to no lead"
    assert "self-referral" in attribute("X", referee, referee, T0, T0, None).rule
    other = uuid4()
    assert (
        attribute("X", referrer, referee, T0, T0, other).rule
        == f"first referral wins: already referred by lead {other}"
    )
    known = attribute("X", referrer, referee, T0, T0 - timedelta(days=3), None)
    assert not known.recorded and "already a known lead" in known.rule
    assert attribute("X", referrer, referee, T0, T0 - timedelta(seconds=59), None).recorded  # the same capture


def test_qualification_at_the_minimum_and_the_window() -> None:
    assert qualification_refusal(FRIENDS, Decimal(20000), T0, T0 + timedelta(days=60)) == ""
    assert "below the programme's minimum of 20,000" in qualification_refusal(FRIENDS, Decimal("19999.99"), T0, T0)
    late = qualification_refusal(FRIENDS, Decimal(50000), T0, T0 + timedelta(days=60, hours=1))
    assert "window is 60 days" in late


def test_who_may_refer() -> None:
    good = Person(uuid4(), stage="funded")
    assert referrer_refusal(FRIENDS, good) == ""
    assert "stage applied" in referrer_refusal(FRIENDS, Person(uuid4(), stage="applied"))
    assert "delinquent" in referrer_refusal(FRIENDS, Person(uuid4(), stage="funded", delinquent=True))
    staff = Person(uuid4(), stage="funded", tags=frozenset({"employee"}))
    assert referrer_refusal(FRIENDS, staff) == "the referrer is excluded from rewards (employee)"
    homes = parse_programmes(yaml.safe_load(PROGRAMMES)).by_id["homes"]
    agent = Person(uuid4(), stage="funded", tags=frozenset({"settlement_service_provider"}))
    assert "settlement_service_provider" in referrer_refusal(homes, agent)
    assert referrer_refusal(FRIENDS, agent) == ""  # not excluded from a consumer programme


def person(**kw: object) -> Person:
    return Person(uuid4(), **kw)  # type: ignore[arg-type]


def test_each_fraud_check_with_its_reason() -> None:
    referrer = person(name="Wang Fang", birth_year=1990, phones=frozenset({"+8613800000001"}), stage="funded")
    clean = person(name="Li Lei", birth_year=1992, phones=frozenset({"+8613800000002"}))
    assert fraud_flags(FRIENDS, referrer, clean, 1, False) == []
    same_phone = person(name="Li Lei", phones=frozenset({"+8613800000001"}))
    assert fraud_flags(FRIENDS, referrer, same_phone, 1, False) == ["referrer and referee share phone"]
    same_device = person(device="dev-9")
    assert fraud_flags(FRIENDS, person(device="dev-9"), same_device, 1, False) == ["referrer and referee share device"]
    address = fraud_flags(FRIENDS, person(address="1 Nanjing Rd"), person(address="1  nanjing rd"), 1, False)
    assert address == ["referrer and referee share address"]
    twin = person(name="wang fang", birth_year=1990)
    assert fraud_flags(FRIENDS, referrer, twin, 1, False) == [
        "possible self-referral under a second identity: same name and birth year"
    ]
    assert fraud_flags(FRIENDS, referrer, clean, 3, False) == []  # at the limit
    assert fraud_flags(FRIENDS, referrer, clean, 4, False) == [
        "velocity: 4 referrals by this referrer that day (more than 3)"
    ]
    assert fraud_flags(FRIENDS, referrer, clean, 1, True) == ["ring: the referee referred the referrer"]
    sibling = person(emails=frozenset({"x@example.com"}))
    sharing = person(emails=frozenset({"x@example.com"}))
    [flag] = fraud_flags(FRIENDS, referrer, sharing, 1, False, [sibling])
    assert flag == f"shares e-mail with another referee of this referrer (lead {sibling.lead_id})"


def test_caps_and_budget_at_their_boundaries() -> None:
    assert cap_refusal(FRIENDS, 1, 4, Decimal(650)) == ""  # 650 + 350 = 1,000: exactly the budget
    assert cap_refusal(FRIENDS, 2, 2, Decimal(0)) == "the referrer was rewarded 2 times this month (cap 2)"
    assert cap_refusal(FRIENDS, 0, 5, Decimal(0)) == "the referrer was rewarded 5 times this year (cap 5)"
    assert (
        cap_refusal(FRIENDS, 0, 0, Decimal("650.01")) == "the programme's budget has 349.99 left; this reward costs 350"
    )


def test_clawback_window() -> None:
    assert clawback_due(FRIENDS, T0, T0 + timedelta(days=90))
    assert not clawback_due(FRIENDS, T0, T0 + timedelta(days=90, seconds=1))
    assert not clawback_due(FRIENDS, T0, T0 - timedelta(days=1))  # before funding: another loan's


def test_a_referral_is_paid_once_and_can_be_clawed_back() -> None:
    referee, referrer = uuid4(), uuid4()
    r = Referral(referee_id=referee, referrer_id=referrer, code="ABCD1234", rule="valid", at=T0)
    assert r.id == referral_id(referee) and isinstance(r.id, UUID)
    r.qualify("friends", "A1", Money(Decimal(50000), "CNY"), T0 + timedelta(days=10))
    r.pay({"kind": "cash", "amount": "200"}, {"kind": "rate_discount", "amount": "0.25"}, T0 + timedelta(days=10))
    with pytest.raises(ReferralStateError, match="is paid, not qualified or approved"):
        r.pay({}, {}, T0 + timedelta(days=11))
    r.claw_back("missed repayment 30 days after funding", T0 + timedelta(days=40))
    assert r.status == "clawed_back"
    held = Referral(referee_id=uuid4(), referrer_id=referrer, code="ABCD1234", rule="valid", at=T0)
    held.qualify("friends", "A2", Money(Decimal(50000), "CNY"), T0)
    held.hold(["ring: the referee referred the referrer"], T0)
    with pytest.raises(ReferralStateError):
        held.pay({}, {}, T0)  # never paid automatically
    with pytest.raises(ReferralStateError, match="needs a note"):
        held.reject("reviewer", " ", T0)
    held.approve("reviewer", "checked: cousins, different homes", T0)
    held.pay({"kind": "cash"}, {"kind": "cash"}, T0)
    assert [type(e).__name__ for e in held.collect_events()] == [
        "Recorded", "Qualified", "Held", "Approved", "Paid"
    ]  # fmt: skip
    refused = ReferralAttempt(
        referee_id=referee, referrer_id="", code="ZZZZ0000", reason="code belongs to no lead", at=T0
    )
    assert refused.reason == "code belongs to no lead"
