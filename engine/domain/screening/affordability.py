"""Repayment, debt-to-income, maximum affordable principal, loan-to-value and APR (DOMAIN.md).

Money is Decimal; rates are annual fractions (0.035 for 3.5%). Results are rounded to cents
only where a person reads them.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, getcontext

getcontext().prec = 28
CENT = Decimal("0.01")
#: Beyond this rate per period the APR search gives up with an error rather than a wrong figure.
MAX_PERIODIC_RATE = 1024.0


def _monthly(annual_rate: Decimal) -> Decimal:
    return annual_rate / 12


def level_payment(principal: Decimal, annual_rate: Decimal, months: int) -> Decimal:
    """等额本息: M = P·r(1+r)^n / ((1+r)^n − 1); r = 0 → P/n."""
    r = _monthly(annual_rate)
    if r == 0:
        return (principal / months).quantize(CENT, ROUND_HALF_UP)
    growth = (1 + r) ** months
    return (principal * r * growth / (growth - 1)).quantize(CENT, ROUND_HALF_UP)


def equal_principal_first_payment(principal: Decimal, annual_rate: Decimal, months: int) -> Decimal:
    """等额本金: payment_k = P/n + (P − (k−1)P/n)·r; the first (largest) is the one to afford."""
    return (principal / months + principal * _monthly(annual_rate)).quantize(CENT, ROUND_HALF_UP)


def debt_to_income(monthly_debt: Decimal, monthly_income: Decimal) -> Decimal:
    """Monthly debt payments over monthly income, as a fraction (4 places)."""
    if monthly_income <= 0:
        raise ValueError("monthly income must be positive to compute debt-to-income")
    return (monthly_debt / monthly_income).quantize(Decimal("0.0001"), ROUND_HALF_UP)


def max_affordable_principal(
    monthly_income: Decimal, other_debt: Decimal, dti_cap: Decimal, annual_rate: Decimal, months: int
) -> Decimal:
    """P = (cap·income − other debt)·((1+r)^n − 1)/(r(1+r)^n); 0 when the cap is already used up."""
    room = dti_cap * monthly_income - other_debt
    if room <= 0:
        return Decimal(0)
    r = _monthly(annual_rate)
    if r == 0:
        return (room * months).quantize(CENT, ROUND_HALF_UP)
    growth = (1 + r) ** months
    return (room * (growth - 1) / (r * growth)).quantize(CENT, ROUND_HALF_UP)


def loan_to_value(loan: Decimal, value: Decimal) -> Decimal:
    if value <= 0:
        raise ValueError("collateral value must be positive to compute loan-to-value")
    return (loan / value).quantize(Decimal("0.0001"), ROUND_HALF_UP)


def apr(net_received: Decimal, payments: list[Decimal], periods_per_year: int = 12) -> Decimal:
    """Annual percentage rate by IRR: the rate at which the payments' present value equals what
    the borrower actually received (principal less up-front fees), times periods per year.

    The search runs in binary floating point (a rate to 1e-12 is far finer than the 0.01% shown);
    level payments use the annuity formula, so one evaluation costs O(1). The bracket starts at
    0–100% a period and widens until it holds the rate: no figure is ever silently capped.
    """
    if net_received <= 0 or not payments or sum(payments) < net_received:
        raise ValueError("APR needs a positive amount received and payments that repay it")
    target = float(net_received)
    flows = [float(p) for p in payments]
    level = all(f == flows[0] for f in flows)
    n = len(flows)

    def present_value(rate: float) -> float:
        if rate == 0:
            return sum(flows)
        if level:
            return flows[0] * (1 - (1 + rate) ** -n) / rate
        return sum(f / (1 + rate) ** (k + 1) for k, f in enumerate(flows))

    low, high = 0.0, 1.0
    while present_value(high) > target:  # a rate above 100% a period: widen the bracket, never cap
        low, high = high, high * 2
        if high > MAX_PERIODIC_RATE:
            raise ValueError(f"APR above {MAX_PERIODIC_RATE * periods_per_year:.0%} a year: these terms are not a loan")
    for _ in range(100):  # bisection: present value falls as the rate rises
        mid = (low + high) / 2
        if present_value(mid) > target:
            low = mid
        else:
            high = mid
    return Decimal(repr(low * periods_per_year)).quantize(Decimal("0.0001"), ROUND_HALF_UP)


def flat_fee_schedule(principal: Decimal, monthly_fee_rate: Decimal, months: int) -> list[Decimal]:
    """Equal instalments of principal plus a flat monthly fee on the original principal."""
    instalment = principal / months + principal * monthly_fee_rate
    return [instalment] * months
