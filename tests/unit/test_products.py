"""Product matching: the cheapest eligible product by APR, or why none fits."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from engine.adapters.yaml_files import load_yaml, strip_lines
from engine.domain.screening.affordability import max_affordable_principal
from engine.domain.screening.products import affordability, match, parse_catalogue
from engine.domain.shared.errors import JourneyValidationError

CATALOGUE = parse_catalogue(
    strip_lines(load_yaml(Path(__file__).resolve().parents[2] / "journeys" / "config" / "products.yaml"))
)


def facts(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "loan_type": "consumer",
        "loan_amount": D(50_000),
        "loan_term_months": D(12),
        "monthly_income": D(20_000),
        "monthly_debt": D(2_000),
        "tier": "prime",
    }
    base.update(kw)
    return base


def test_cheapest_eligible_product_by_apr() -> None:
    m = match(CATALOGUE, facts())
    assert m is not None and m.product is not None
    assert m.product.id == "quick-consumer" and m.apr == D("0.072")
    assert m.payment == D("4330.95")  # 50,000 at 7.2% over 12 months


def test_flat_fee_product_shows_its_true_apr() -> None:
    m = match(CATALOGUE, facts(tier="other"))  # quick-consumer needs prime or near-prime
    assert m is not None and m.product is not None and m.product.id == "consumer-instalment"
    assert m.apr == D("0.1303")
    assert m.reasons == {"quick-consumer": "tier other not in near_prime, prime"}


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        ({"loan_amount": D(900_000)}, "amount 900,000 above maximum"),
        ({"monthly_income": D(4_000)}, "monthly income 4,000 below 5,000"),
        ({"monthly_debt": D(11_000)}, "DTI with this loan 77% > 55%"),
    ],
)
def test_no_fit_says_why(kw: dict[str, Any], reason: str) -> None:
    m = match(CATALOGUE, facts(**kw))
    assert m is not None and m.product is None
    assert any(r.startswith(reason) for r in m.reasons.values()), m.reasons


def test_eligibility_may_not_use_a_prohibited_basis() -> None:
    with pytest.raises(JourneyValidationError, match="never a prohibited basis"):
        parse_catalogue(
            {
                "products": [
                    {
                        "id": "x",
                        "type": "consumer",
                        "amount": [1, 2],
                        "term_months": [1, 2],
                        "rate": 0.1,
                        "eligibility": {"max_age": 60},
                    }
                ]
            }
        )


def test_credit_policy_keeps_flagged_leads_out_of_every_offer() -> None:
    m = match(CATALOGUE, facts(segments=["consumer_interest", "delinquent"]))
    assert m is not None and m.product is None
    assert m.reasons == {"policy": "in segment delinquent: no credit offers"}


def test_a_weak_credit_band_is_a_reason_and_an_unscored_lead_is_not_refused_for_it() -> None:
    weak = match(CATALOGUE, facts(credit_band="E"))
    assert weak is not None and weak.product is not None and weak.product.id == "consumer-instalment"
    assert weak.reasons["quick-consumer"] == "credit band E not in A, B, C"
    unscored = match(CATALOGUE, facts())
    assert unscored is not None and unscored.product is not None and unscored.product.id == "quick-consumer"


def test_policy_may_only_exclude_segments() -> None:
    with pytest.raises(JourneyValidationError, match="policy: may only hold exclude_segments"):
        parse_catalogue({"policy": {"exclude_ages": [70]}, "products": []})


def test_no_fit_lists_every_rule_a_product_refuses_not_just_the_first() -> None:
    """An officer on the call can say everything that would have to change."""
    m = match(CATALOGUE, facts(loan_amount=D(900_000), monthly_income=D(4_000), tier="other", credit_band="E"))
    assert m is not None and m.product is None
    quick = m.reasons["quick-consumer"].split("; ")
    assert quick[0] == "amount 900,000 above maximum 300,000"
    assert "monthly income 4,000 below 5,000" in quick
    assert "tier other not in near_prime, prime" in quick
    assert "credit band E not in A, B, C" in quick
    assert any(r.startswith("DTI ") for r in quick)


def test_a_secured_loan_above_its_ltv_cap_is_refused_and_an_unknown_value_is_not() -> None:
    mortgage = facts(loan_type="mortgage", loan_amount=D(900_000), loan_term_months=D(360), monthly_income=D(40_000))
    fits = match(CATALOGUE, mortgage)
    assert fits is not None and fits.product is not None and fits.product.id == "home-mortgage"
    too_high = match(CATALOGUE, {**mortgage, "collateral_value": D(1_000_000), "ltv": D("0.9")})
    assert too_high is not None and too_high.product is None
    assert too_high.reasons == {"home-mortgage": "LTV 90% > 80%"}


def test_the_most_a_lead_can_borrow_keeps_the_dti_within_each_products_cap() -> None:
    """20,000 a month, 2,000 of debts, 55% cap: 9,000 a month of room for the new loan."""
    lead = facts(collateral_value=D(200_000), ltv=D("0.25"))
    brief = affordability(CATALOGUE, {**lead, "dti": D("0.1")})
    assert {k: brief[k] for k in ("monthly_income", "monthly_debt", "dti", "ltv")} == {
        "monthly_income": "20000",
        "monthly_debt": "2000",
        "dti": "0.1",
        "ltv": "0.25",
    }
    most = {m["product"]: (D(m["amount"]), m["term_months"]) for m in brief["max_affordable"]}
    quick, months = most["quick-consumer"]
    assert months == 12 and abs(quick - max_affordable_principal(D(20_000), D(2_000), D("0.55"), D("0.072"), 12)) <= 1
    # The instalment product charges 0.6% a month on the principal: 1/12 + 0.006 per unit.
    assert most["consumer-instalment"] == (D(100_746), 12)
    # Debts that already use the cap leave nothing; no income, no figure.
    assert affordability(CATALOGUE, facts(monthly_debt=D(12_000)))["max_affordable"][0]["amount"] == "0"
    assert "max_affordable" not in affordability(CATALOGUE, facts(monthly_income=None))
