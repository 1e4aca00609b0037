"""The product catalogue and matching: which products fit a lead's need, and why not (DOMAIN.md).

Eligibility reads income, debt, tier, region and purpose only — never a prohibited basis. The
APR shown is the IRR of the real cash flows, fees included.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from engine.domain.screening.affordability import apr, level_payment
from engine.domain.shared.errors import JourneyValidationError
from engine.domain.shared.values import LoanType, Tier


@dataclass(frozen=True)
class Product:
    """One loan product: ranges, price and eligibility."""

    id: str
    name: dict[str, str]
    type: LoanType
    amount: tuple[Decimal, Decimal]
    term_months: tuple[int, int]
    rate: Decimal
    upfront_fee: Decimal  # fraction of the principal, deducted at drawdown
    monthly_fee: Decimal  # fraction of the principal, every month
    min_income: Decimal
    max_dti: Decimal
    tiers: frozenset[str]
    regions: frozenset[str]
    credit_bands: frozenset[str] = frozenset()  # empty: any band, or not scored yet
    max_ltv: Decimal | None = None  # secured loans: loan over collateral value (unknown value: not refused)

    def apr_for(self, amount: Decimal, months: int) -> Decimal:
        payment = level_payment(amount, self.rate, months) + amount * self.monthly_fee
        return apr(amount * (1 - self.upfront_fee), [payment] * months)

    def payment_for(self, amount: Decimal, months: int) -> Decimal:
        return (level_payment(amount, self.rate, months) + amount * self.monthly_fee).quantize(Decimal("0.01"))


@dataclass(frozen=True)
class Catalogue:
    products: tuple[Product, ...]
    version: str
    exclude_segments: frozenset[str] = frozenset()  # credit policy: no offer to these leads


@dataclass(frozen=True)
class Match:
    """The best eligible product (lowest APR) with its price, and why each other product does not fit."""

    product: Product | None
    apr: Decimal | None
    payment: Decimal | None
    dti_after: Decimal | None
    reasons: dict[str, str]


def match(catalogue: Catalogue, facts: dict[str, Any]) -> Match | None:
    """Rank the products of the lead's loan type; None when the lead gave no loan type."""
    loan_type = facts.get("loan_type")
    if not loan_type:
        return None
    amount = facts.get("loan_amount")
    income, debt = facts.get("monthly_income"), facts.get("monthly_debt") or Decimal(0)
    reasons: dict[str, str] = {}
    flagged = sorted(catalogue.exclude_segments & set(facts.get("segments") or []))
    if flagged:
        return Match(None, None, None, None, {"policy": f"in segment {', '.join(flagged)}: no credit offers"})
    fits: list[tuple[Decimal, Product, Decimal, Decimal | None]] = []
    for p in (p for p in catalogue.products if p.type.value == loan_type):
        months = int(facts.get("loan_term_months") or p.term_months[1])
        refused = _refusals(p, amount, months, income, facts)
        dti_after = None
        if amount is not None and income:
            dti_after = ((debt + p.payment_for(amount, months)) / income).quantize(Decimal("0.0001"))
            if dti_after > p.max_dti:
                refused.append(f"DTI with this loan {dti_after:.0%} > {p.max_dti:.0%}")
        if refused:  # every rule the lead fails, so an officer can say what would change it
            reasons[p.id] = "; ".join(refused)
            continue
        price = p.apr_for(amount, months) if amount is not None else p.rate
        fits.append((price, p, p.payment_for(amount, months) if amount is not None else Decimal(0), dti_after))
    if not fits and not reasons:
        reasons["catalogue"] = f"no {loan_type} product in the catalogue"
    if not fits:
        return Match(None, None, None, None, reasons)
    price, best, payment, dti_after = min(fits, key=lambda f: (f[0], f[1].id))
    return Match(best, price, payment or None, dti_after, reasons)


def _refusals(
    p: Product, amount: Decimal | None, months: int, income: Decimal | None, facts: dict[str, Any]
) -> list[str]:
    """Every eligibility rule of ``p`` the lead fails (DTI is checked by the caller)."""
    out = []
    if amount is not None and amount > p.amount[1]:
        out.append(f"amount {amount:,.0f} above maximum {p.amount[1]:,.0f}")
    if amount is not None and amount < p.amount[0]:
        out.append(f"amount {amount:,.0f} below minimum {p.amount[0]:,.0f}")
    if not p.term_months[0] <= months <= p.term_months[1]:
        out.append(f"term {months} months outside {p.term_months[0]}-{p.term_months[1]}")
    if p.min_income and (income is None or income < p.min_income):
        out.append(f"monthly income {'unknown' if income is None else f'{income:,.0f}'} below {p.min_income:,.0f}")
    if p.tiers and facts.get("tier") not in p.tiers:
        out.append(f"tier {facts.get('tier')} not in {', '.join(sorted(p.tiers))}")
    if p.regions and facts.get("region") not in p.regions:
        out.append(f"region {facts.get('region') or 'unknown'} not served")
    if p.credit_bands and facts.get("credit_band") and facts["credit_band"] not in p.credit_bands:
        out.append(f"credit band {facts['credit_band']} not in {', '.join(sorted(p.credit_bands))}")
    if p.max_ltv is not None and facts.get("ltv") is not None and facts["ltv"] > p.max_ltv:
        out.append(f"LTV {facts['ltv']:.0%} > {p.max_ltv:.0%}")
    return out


def max_affordable(p: Product, facts: dict[str, Any]) -> tuple[Decimal, int] | None:
    """The largest principal of ``p`` whose payment (fees included) keeps the lead's DTI within
    the product's cap, at the term asked (or the product's longest), within the product's range;
    None without income. 0 when the lead's debts already use the cap up."""
    income, debt = facts.get("monthly_income"), facts.get("monthly_debt") or Decimal(0)
    if not income:
        return None
    months = min(max(int(facts.get("loan_term_months") or p.term_months[1]), p.term_months[0]), p.term_months[1])
    room = p.max_dti * income - debt
    per_unit = p.payment_for(Decimal(1_000_000), months) / Decimal(1_000_000)  # payment per unit of principal
    if room <= 0 or per_unit <= 0:
        return Decimal(0), months
    return min((room / per_unit).quantize(Decimal(1), rounding=ROUND_FLOOR), p.amount[1]), months


#: The eligibility rules a product may set (none of them a prohibited basis).
ELIGIBILITY_RULES = ("min_income", "max_dti", "max_ltv", "tiers", "regions", "credit_bands")


def parse_catalogue(data: Any, source: str = "products.yaml") -> Catalogue:
    """Validate products.yaml; every problem names the product and field."""
    problems: list[str] = []
    products = []
    for n, raw in enumerate((data or {}).get("products") or [], 1):
        where = f"{source}: products[{n}]"
        try:
            eligibility = raw.get("eligibility") or {}
            fees = raw.get("fees") or {}
            product = Product(
                id=str(raw["id"]),
                name={str(k): str(v) for k, v in (raw.get("name") or {}).items()},
                type=LoanType(raw["type"]),
                amount=(Decimal(str(raw["amount"][0])), Decimal(str(raw["amount"][1]))),
                term_months=(int(raw["term_months"][0]), int(raw["term_months"][1])),
                rate=Decimal(str(raw["rate"])),
                upfront_fee=Decimal(str(fees.get("upfront", 0))),
                monthly_fee=Decimal(str(fees.get("monthly", 0))),
                min_income=Decimal(str(eligibility.get("min_income", 0))),
                max_dti=Decimal(str(eligibility.get("max_dti", "0.55"))),
                tiers=frozenset(Tier(t).value for t in eligibility.get("tiers") or []),
                regions=frozenset(str(r) for r in eligibility.get("regions") or []),
                credit_bands=frozenset(str(b) for b in eligibility.get("credit_bands") or []),
                max_ltv=Decimal(str(eligibility["max_ltv"])) if eligibility.get("max_ltv") is not None else None,
            )
        except (KeyError, TypeError, ValueError, IndexError, ArithmeticError) as e:
            problems.append(
                f"{where}: {type(e).__name__}: {e} (needs id, type, amount [min, max], "
                "term_months [min, max], rate; optional fees, eligibility)"
            )
            continue
        unknown = set(raw.get("eligibility") or {}) - set(ELIGIBILITY_RULES)
        if unknown:
            problems.append(
                f"{where}: eligibility may use {', '.join(ELIGIBILITY_RULES)} only "
                f"(never a prohibited basis); got {sorted(unknown)}"
            )
        if product.amount[0] > product.amount[1] or product.term_months[0] > product.term_months[1]:
            problems.append(f"{where}: ranges must be [min, max]")
        products.append(product)
    policy = (data or {}).get("policy") or {}
    if not isinstance(policy, dict) or set(policy) - {"exclude_segments"}:
        problems.append(f"{source}: policy: may only hold exclude_segments: [segment ids]")
        policy = {}
    if problems:
        raise JourneyValidationError(problems)
    digest = hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return Catalogue(tuple(products), digest, frozenset(str(s) for s in policy.get("exclude_segments") or []))


def affordability(catalogue: Catalogue | None, facts: dict[str, Any]) -> dict[str, Any]:
    """What a loan officer reads on the call: income, debts, DTI now and after the matched loan,
    LTV, and the most each product of the lead's loan type could lend within its DTI cap."""
    shown = {k: facts.get(k) for k in ("monthly_income", "monthly_debt", "dti", "collateral_value", "ltv")}
    out: dict[str, Any] = {k: str(v) for k, v in shown.items() if v is not None}
    products = [p for p in (catalogue.products if catalogue else ()) if p.type.value == facts.get("loan_type")]
    most = []
    for p in products:
        found = max_affordable(p, facts)
        if found is not None:
            most.append({"product": p.id, "amount": str(found[0]), "term_months": found[1], "max_dti": str(p.max_dti)})
    if most:
        out["max_affordable"] = most
    return out
