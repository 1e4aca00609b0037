"""Lift with its intervals and the leads a split still needs, checked against hand-worked
figures; cost periods as finance writes them."""

from __future__ import annotations

import math
from datetime import date

import pytest

from engine.domain.marketing.costs import Period, parse_period
from engine.domain.marketing.lift import Lift


def test_lift_intervals_and_leads_needed_match_the_textbook_formulas() -> None:
    # 10% of 1,000 against 12% of 1,000: a 2-point lift, SE √(.1·.9/1000 + .12·.88/1000).
    lift = Lift(1000, 100, 1000, 120)
    se = math.sqrt(0.1 * 0.9 / 1000 + 0.12 * 0.88 / 1000)
    low, high = lift.absolute_ci  # type: ignore[misc]
    assert (low, high) == pytest.approx((0.02 - 1.959964 * se, 0.02 + 1.959964 * se), abs=1e-6)
    assert not lift.significant  # the interval spans zero
    # Katz's interval of the risk ratio 1.2: exp(ln 1.2 ± 1.96·√(1/120 − 1/1000 + 1/100 − 1/1000)).
    k = math.sqrt(1 / 120 - 1 / 1000 + 1 / 100 - 1 / 1000)
    rel_low, rel_high = lift.relative_ci  # type: ignore[misc]
    assert (rel_low, rel_high) == pytest.approx((1.2 * math.exp(-1.959964 * k) - 1, 1.2 * math.exp(1.959964 * k) - 1))
    # Per arm for 80% power at 5%: (1.96 + 0.8416)² (.09 + .1056) / .02² ≈ 3,838 — 2,838 more.
    assert lift.leads_needed_per_arm == math.ceil((1.959964 + 0.841621) ** 2 * (0.09 + 0.1056) / 0.02**2)
    assert (
        lift.verdict("B", "A")
        == f"not significant yet: about {lift.leads_needed_per_arm - 1000:,} more leads per arm needed"
    )


def test_a_clear_difference_is_significant_and_said_so() -> None:
    lift = Lift(2000, 100, 2000, 200)
    assert lift.significant and lift.absolute_ci[0] > 0  # type: ignore[index]
    assert lift.verdict("offer", "holdout") == "significant: offer converts better than holdout by 5.0 points"
    assert Lift(2000, 200, 2000, 100).verdict("offer", "holdout").startswith("significant: offer converts worse")


def test_nothing_to_compare_is_said_plainly() -> None:
    assert Lift(0, 0, 10, 1).verdict("B", "A") == "no leads yet in A"
    empty = Lift(0, 0, 10, 1).as_dict("B", "A")  # an arm with no leads has no rate, and no lift
    assert (empty["control_rate"], empty["absolute_lift"], empty["arm_rate"]) == (None, None, 0.1)
    none = Lift(50, 0, 50, 0)
    assert none.absolute_ci is None and none.relative is None and not none.significant
    assert none.verdict("B", "A") == "no difference seen yet: keep it running"


def test_cost_periods_as_finance_writes_them() -> None:
    assert parse_period("2026-02") == Period(date(2026, 2, 1), date(2026, 2, 28))
    assert parse_period("2026-12") == Period(date(2026, 12, 1), date(2026, 12, 31))
    assert parse_period(" 2026-03-05 ") == Period(date(2026, 3, 5), date(2026, 3, 5))
    week = parse_period("2026-03-01..2026-03-07")
    assert week.days == 7 and week.overlap(date(2026, 3, 5), None) == 3 and week.overlap(date(2026, 4, 1), None) == 0
    for bad in ("2026-13", "March", "2026-03-07..2026-03-01", ""):
        with pytest.raises(ValueError, match=r"expected a month|ends \(2026-03-01\) before"):
            parse_period(bad)


def test_a_period_reads_back_as_finance_wrote_it() -> None:
    for text in ("2026-02", "2028-02", "2026-12", "2026-03-05", "2026-03-01..2026-03-07", "2026-03-01..2026-04-30"):
        assert parse_period(text).label == text
        assert parse_period(parse_period(text).label) == parse_period(text)
    assert str(parse_period("2026-02")) == "2026-02-01..2026-02-28"  # the JSON documents keep both days


def _peeked_experiments(lift_b: float, runs: int = 400, days: int = 30, per_day: int = 60) -> tuple[float, float]:
    """Share of ``runs`` experiments (control converts 10%, arm B ``lift_b`` points more) that a
    marketer reading the report every day would stop as a significant difference: by the naive
    95% interval, and by the always-valid verdict. Seeded: the same numbers every run."""
    import numpy as np

    rng = np.random.default_rng(20261206)
    naive = always = 0
    for _ in range(runs):
        a = rng.binomial(1, 0.10, size=(days, per_day)).sum(axis=1).cumsum()
        b = rng.binomial(1, 0.10 + lift_b, size=(days, per_day)).sum(axis=1).cumsum()
        looks = [Lift(per_day * (d + 1), int(a[d]), per_day * (d + 1), int(b[d])) for d in range(days)]
        naive += any(look.significant for look in looks)
        always += any(look.sequential_verdict("B") != "keep going" for look in looks)
    return naive / runs, always / runs


def test_peeking_every_day_at_an_a_a_test_keeps_false_winners_at_5_percent_only_when_always_valid() -> None:
    """Two identical arms, read every day for 30 days: the fixed-horizon interval declares a
    difference far more often than 5% of the time; the always-valid verdict stays at or under 5%."""
    naive, always = _peeked_experiments(0.0)
    assert naive > 0.10  # the classic peeking mistake: several times the nominal 5%
    assert always <= 0.05


def test_a_real_lift_is_found_by_the_always_valid_verdict() -> None:
    """Three points on a 10% base, 100 leads a day per arm: the always-valid verdict says stop within
    the month in most runs (it pays for its guarantee with some power: the naive one 'finds' it more)."""
    _, found = _peeked_experiments(0.03, runs=200, per_day=100)
    assert found > 0.6


def test_the_always_valid_interval_is_wider_and_agrees_with_its_verdict() -> None:
    lift = Lift(2000, 200, 2000, 290)  # 10% against 14.5%
    fixed, seq = lift.absolute_ci, lift.confidence_sequence
    assert fixed is not None and seq is not None
    assert seq[0] < fixed[0] < fixed[1] < seq[1]
    assert seq[0] > 0 and lift.sequential_verdict("B") == "stop: B wins" and lift.always_valid_p < 0.05
    assert Lift(0, 0, 10, 1).sequential_verdict("B") == "keep going" and Lift(0, 0, 10, 1).always_valid_p == 1.0
