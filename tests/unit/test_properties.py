"""Properties that must hold for every input, checked by Hypothesis: affordability and APR,
the interpreter over the bundled journeys, and duration and calendar arithmetic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.adapters.yaml_files import load_yaml
from engine.domain.journeys import interpreter
from engine.domain.journeys.decisions import Context, Exit, Wait
from engine.domain.journeys.interpreter import SPLIT_BUCKETS
from engine.domain.journeys.journey import Journey, SplitStep
from engine.domain.journeys.parsing import parse_journey
from engine.domain.screening.affordability import apr, level_payment, max_affordable_principal
from engine.domain.shared.durations import CalendarOffset, parse_duration, parse_offset
from engine.domain.shared.values import Audience, Stage, Tier

ROOT = Path(__file__).resolve().parents[2]
CONFIG = {"segments.yaml", "products.yaml", "contact_policy.yaml"}
BUNDLED: list[Journey] = [
    parse_journey(load_yaml(p), str(p)) for p in sorted((ROOT / "journeys").glob("*.yaml")) if p.name not in CONFIG
]

# Hypothesis bounds datetimes with naive values and attaches the zone itself.
NAIVE_2000, NAIVE_2026, NAIVE_2031 = (datetime(y, 1, 1) for y in (2000, 2026, 2031))  # noqa: DTZ001

money = st.decimals(min_value=Decimal(1000), max_value=Decimal(5_000_000), places=2)
rates = st.decimals(min_value=Decimal(0), max_value=Decimal("0.36"), places=4)
terms = st.integers(min_value=1, max_value=360)


# ---- affordability and APR ---------------------------------------------------------------


@given(principal=money, rate=rates, months=terms)
def test_level_payment_and_affordable_principal_invert_each_other(
    principal: Decimal, rate: Decimal, months: int
) -> None:
    payment = level_payment(principal, rate, months)
    # Whoever can afford exactly that payment (all income within the cap, no other debt) can
    # borrow the principal back, to within the cent the payment was rounded to, over the term.
    back = max_affordable_principal(payment, Decimal(0), Decimal(1), rate, months)
    assert abs(back - principal) <= Decimal("0.005") * months + Decimal("0.01")


def amortisation(principal: Decimal, rate: Decimal, months: int) -> list[Decimal]:
    """The lender's schedule: the level payment rounded to a cent, the last one settling the
    balance exactly (so the payments repay the principal at the rate, cent rounding included)."""
    payment, balance, monthly = level_payment(principal, rate, months), principal, rate / 12
    for _ in range(months - 1):
        balance = balance * (1 + monthly) - payment
    return [payment] * (months - 1) + [balance * (1 + monthly)]


@given(principal=money, rate=rates, months=terms)
def test_apr_of_an_amortising_loan_without_fees_is_its_rate(principal: Decimal, rate: Decimal, months: int) -> None:
    assert abs(apr(principal, amortisation(principal, rate, months)) - rate) <= Decimal("0.0001")


@given(
    received=st.decimals(min_value=Decimal(1), max_value=Decimal(100_000), places=2),
    multiple=st.decimals(min_value=Decimal("1.01"), max_value=Decimal(200), places=2),
    months=st.integers(min_value=1, max_value=60),
)
def test_apr_is_never_silently_capped(received: Decimal, multiple: Decimal, months: int) -> None:
    """However dear the terms, the APR found discounts the payments back to what was received,
    or the search refuses with an error: it never returns a capped figure."""
    payments = [received * multiple / months] * months
    try:
        rate = apr(received, payments)
    except ValueError as e:
        refusal = str(e)
    else:
        refusal = ""
    if refusal:
        assert "not a loan" in refusal
        return
    r = float(rate) / 12
    pv = sum(float(p) / (1 + r) ** (k + 1) for k, p in enumerate(payments))
    # APR is rounded to 0.01% a year: the present value moves by at most that much rate's worth.
    slack = sum(float(p) * (k + 1) / (1 + r) ** (k + 2) for k, p in enumerate(payments)) * 0.0001 / 12
    assert abs(pv - float(received)) <= slack + 1e-6 * float(received)


def test_apr_above_1200_percent_a_year_is_found_not_capped() -> None:
    # 100 received, 12 payments of 150: about 150% a month.
    assert apr(Decimal(100), [Decimal(150)] * 12) > Decimal(17)


# ---- the interpreter over every bundled journey ------------------------------------------

facts_strategy = st.fixed_dictionaries(
    {
        "stage": st.sampled_from([s.value for s in Stage]),
        "audience": st.sampled_from([a.value for a in Audience]),
        "tier": st.sampled_from([t.value for t in Tier]),
        "segments": st.lists(st.sampled_from(["young_professionals", "sme_owners", "seniors", "renovators"])),
        "language": st.sampled_from(["zh-CN", "en"]),
        "has_email": st.sampled_from(["yes", "no"]),
        "has_phone": st.sampled_from(["yes", "no"]),
        "tags": st.lists(st.sampled_from(["vip", "called", "docs_missing"])),
        "product_fit": st.sampled_from(["fit", "no_fit", "unknown"]),
        "missed_repayments": st.integers(min_value=0, max_value=3),
        "funded_loans": st.lists(st.sampled_from(["mortgage", "auto", "consumer"])),
    },
    optional={
        "age": st.integers(min_value=18, max_value=90),
        "monthly_income": st.integers(min_value=0, max_value=200_000),
        "loan_amount": st.integers(min_value=1_000, max_value=5_000_000),
        "loan_type": st.sampled_from(["mortgage", "business", "auto", "consumer", "renovation"]),
        "credit_band": st.sampled_from(["A", "B", "C", "D", "E"]),
        "propensity_band": st.sampled_from(["high", "medium", "low"]),
        "mortgage_months_on_book": st.integers(min_value=0, max_value=120),
        "auto_on_time_payments": st.integers(min_value=0, max_value=60),
    },
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(
    journey_index=st.integers(min_value=0, max_value=len(BUNDLED) - 1),
    step_index=st.integers(min_value=0, max_value=1000),
    facts=facts_strategy,
    lead=st.uuids(),
    stale=st.booleans(),
    now=st.datetimes(min_value=NAIVE_2026, max_value=NAIVE_2031, timezones=st.just(UTC)),
)
def test_from_any_step_of_a_bundled_journey_a_decision_ends_in_a_wait_or_an_exit(
    journey_index: int, step_index: int, facts: dict[str, Any], lead: Any, stale: bool, now: datetime
) -> None:
    journey = BUNDLED[journey_index]
    steps = list(journey.steps)
    step = steps[step_index % len(steps)]
    facts = {**facts, "captured_at": now - timedelta(days=3), "last_funded_at": now - timedelta(days=400)}
    ctx = Context(str(lead), journey.id, facts, now, ZoneInfo("Asia/Shanghai"), now - timedelta(days=1), stale=stale)
    decisions = interpreter.run_from(journey, step, ctx)
    assert isinstance(decisions[-1], Wait | Exit)
    assert not (isinstance(decisions[-1], Exit) and decisions[-1].reason == "error")
    assert all(not isinstance(d, Wait) for d in decisions[:-1])
    waits = [d for d in decisions if isinstance(d, Wait)]
    assert all(w.due_at >= now - timedelta(days=1) or w.kind == "event" for w in waits)


SPLITS = [(j, s) for j in BUNDLED for s in j.steps.values() if isinstance(s, SplitStep)]


@pytest.mark.skipif(not SPLITS, reason="no bundled journey splits")
@given(choice=st.integers(min_value=0, max_value=10_000), lead=st.uuids())
def test_splits_are_deterministic_and_their_arms_cover_every_bucket(choice: int, lead: Any) -> None:
    journey, step = SPLITS[choice % len(SPLITS)]
    assert sum(arm.percent for arm in step.arms) == pytest.approx(100)
    ctx = Context(str(lead), journey.id, {}, datetime(2026, 3, 2, tzinfo=UTC), UTC, datetime(2026, 3, 2, tzinfo=UTC))
    first, again = interpreter.assign(step, ctx), interpreter.assign(step, ctx)
    assert first == again
    assert 0 <= first.bucket < SPLIT_BUCKETS
    assert first.arm in {arm.label for arm in step.arms}


@given(percents=st.lists(st.integers(min_value=1, max_value=100), min_size=2, max_size=5), lead=st.uuids())
def test_any_valid_split_assigns_every_lead_to_exactly_one_arm(percents: list[int], lead: Any) -> None:
    total = sum(percents)
    shares = [p * 100 / total for p in percents]
    shares[-1] = 100 - sum(shares[:-1])
    arms = [{"label": f"arm{i}", "percent": round(s, 6), "next": "end"} for i, s in enumerate(shares)]
    arms[-1]["percent"] = round(100 - sum(a["percent"] for a in arms[:-1]), 6)  # type: ignore[misc]
    data = {
        "id": "s",
        "entry": {"on": "lead_captured"},
        "steps": [{"id": "pick", "split": {"arms": arms}}, {"id": "end", "exit": "completed"}],
    }
    journey = parse_journey(data, "split.yaml")
    step = journey.step("pick")
    assert isinstance(step, SplitStep)
    ctx = Context(str(lead), "s", {}, datetime(2026, 3, 2, tzinfo=UTC), UTC, datetime(2026, 3, 2, tzinfo=UTC))
    assert interpreter.assign(step, ctx).arm in {a["label"] for a in arms}


# ---- durations and the calendar ------------------------------------------------------------


@given(
    w=st.integers(min_value=0, max_value=52),
    d=st.integers(min_value=0, max_value=400),
    h=st.integers(min_value=0, max_value=100),
    m=st.integers(min_value=0, max_value=600),
)
def test_durations_parse_to_their_sum_and_zero_is_refused(w: int, d: int, h: int, m: int) -> None:
    text = "".join(f"{n}{unit}" for n, unit in ((w, "w"), (d, "d"), (h, "h"), (m, "m")) if n)
    expected = timedelta(weeks=w, days=d, hours=h, minutes=m)
    assert parse_duration(text or "0d") == (expected if expected else None)


@given(
    moment=st.datetimes(min_value=NAIVE_2000, max_value=NAIVE_2031, timezones=st.just(UTC)),
    years=st.integers(min_value=-10, max_value=10),
    months=st.integers(min_value=-24, max_value=24),
)
def test_calendar_offsets_land_on_the_same_day_or_the_months_last(moment: datetime, years: int, months: int) -> None:
    later = CalendarOffset(years, months).after(moment)
    assert (later.year * 12 + later.month) - (moment.year * 12 + moment.month) == years * 12 + months
    assert later.day == moment.day or (later.day < moment.day and (later + timedelta(days=1)).day == 1)
    assert later.time() == moment.time()
    assert CalendarOffset(years=years).after(moment) == CalendarOffset(months=12 * years).after(moment)


@given(years=st.integers(min_value=0, max_value=9), months=st.integers(min_value=0, max_value=11), neg=st.booleans())
def test_offsets_parse_with_their_sign(years: int, months: int, neg: bool) -> None:
    text = ("-" if neg else "") + (f"{years}y" if years else "") + (f"{months}mo" if months else "")
    parsed = parse_offset(text)
    if not years and not months:
        assert parsed is None
        return
    sign = -1 if neg else 1
    assert parsed == CalendarOffset(sign * years, sign * months)


# ---- money: exact sums and shares --------------------------------------------------------

amounts = st.decimals(min_value=Decimal("-1000000"), max_value=Decimal("10000000"), places=2)
currencies = st.sampled_from(["CNY", "JPY", "KWD"])


@given(amounts, currencies, st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=12))
@settings(max_examples=300, deadline=None)
def test_a_costs_shares_sum_to_the_spend_exactly_and_follow_the_weights(
    amount: Decimal, currency: str, weights: list[int]
) -> None:
    from engine.domain.shared.money import Money

    if not any(weights):
        weights[0] = 1
    spend = Money(amount, currency)
    shares = spend.allocate(dict(enumerate(weights)))
    assert sum((s.minor_units for s in shares.values()), 0) == spend.minor_units
    total = sum(weights)
    for k, w in enumerate(weights):
        exact = Decimal(spend.minor_units) * w / total
        assert abs(shares[k].minor_units - exact) < 1  # each within one minor unit of its exact share
        assert shares[k].currency == spend.currency


@given(amounts, st.integers(min_value=1, max_value=366), st.data())
@settings(max_examples=200, deadline=None)
def test_a_period_shared_out_day_by_day_adds_up_to_its_cost(amount: Decimal, days: int, data: Any) -> None:
    from engine.domain.shared.money import Money

    cost = Money(amount, "CNY")
    assert cost.prorate(days, days) == cost
    cut = data.draw(st.integers(min_value=0, max_value=days))
    first = cost.prorate(cut, days)
    assert abs((first + cost.prorate(days - cut, days)).minor_units - cost.minor_units) <= 1  # each part rounds once
    [a, b] = cost.allocate({"in": cut, "out": days - cut}).values()
    assert (a + b) == cost


def test_money_of_two_currencies_does_not_add() -> None:
    from engine.domain.shared.money import CurrencyMismatchError, Money

    assert Money(Decimal("1.005"), "cny") == Money(Decimal("1.00"), "CNY")  # half-even to the fen
    assert str(Money(Decimal(1500), "JPY")) == "1500 JPY"
    with pytest.raises(CurrencyMismatchError):
        Money(Decimal(1), "CNY") + Money(Decimal(1), "USD")


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=60) | st.text(max_size=60))
def test_cleaned_text_is_what_dropping_every_unprintable_and_hiding_character_leaves(text: str) -> None:
    """``clean_text`` skips the work for the usual cell (ASCII, all printable): whatever the
    text, it leaves exactly what removing every direction or invisible formatting character and
    every unprintable one (but spaces) leaves."""
    from engine.adapters.lead_rows import _DIRECTION, clean_text

    assert clean_text(text) == "".join(c for c in text if ord(c) not in _DIRECTION and (c.isprintable() or c == " "))


def test_a_phone_number_gives_its_e164_form_and_its_one_time_zone() -> None:
    from engine.adapters.lead_rows import _phone as phone
    from engine.adapters.lead_rows import normalise_phone

    assert phone("138 0013 8000", "CN", []) == ("+8613800138000", "Asia/Shanghai")
    assert phone("+1 212 555 0100", "CN", []) == ("+12125550100", "America/New_York")
    issues: list[str] = []
    assert phone("12", "CN", issues) == (None, None) and issues
    assert normalise_phone("+44 20 7946 0018", "CN", []) == "+442079460018"
