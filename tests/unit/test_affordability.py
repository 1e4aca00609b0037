"""Payment, DTI, affordability and APR formulas against known values (DOMAIN.md)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from engine.domain.screening.affordability import (
    apr,
    debt_to_income,
    equal_principal_first_payment,
    flat_fee_schedule,
    level_payment,
    loan_to_value,
    max_affordable_principal,
)


def test_level_payment_known_value() -> None:
    assert level_payment(D(1_000_000), D("0.035"), 360) == D("4490.45")


def test_level_payment_at_zero_rate() -> None:
    assert level_payment(D(12_000), D(0), 12) == D("1000.00")


def test_equal_principal_first_payment_is_the_largest() -> None:
    first = equal_principal_first_payment(D(1_000_000), D("0.035"), 360)
    assert first == D("5694.44")
    assert first > level_payment(D(1_000_000), D("0.035"), 360)


def test_max_affordable_principal_inverts_the_level_payment() -> None:
    principal = max_affordable_principal(D(20_000), D(2_000), D("0.5"), D("0.035"), 360)
    assert level_payment(principal, D("0.035"), 360) == D("8000.00")
    assert max_affordable_principal(D(10_000), D(6_000), D("0.5"), D("0.035"), 360) == 0


def test_ratios() -> None:
    assert debt_to_income(D(6_100), D(10_000)) == D("0.61")
    assert loan_to_value(D(700_000), D(1_000_000)) == D("0.7")
    with pytest.raises(ValueError, match="income must be positive"):
        debt_to_income(D(1), D(0))


def test_apr_of_a_flat_monthly_fee_loan() -> None:
    """A '0.6% a month' fee over 12 instalments is a 13.03% APR (PBOC 2021 No. 3 example)."""
    assert apr(D(10_000), flat_fee_schedule(D(10_000), D("0.006"), 12)) == D("0.1303")


def test_apr_counts_upfront_fees() -> None:
    payments = [level_payment(D(100_000), D("0.06"), 36)] * 36
    assert apr(D(100_000), payments) == D("0.06")
    assert apr(D(98_000), payments) > D("0.073")  # a 2% arrangement fee
