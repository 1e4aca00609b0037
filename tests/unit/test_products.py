"""Product matching: the cheapest eligible product by APR, or why none fits."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from engine.adapters.yaml_files import load_yaml, strip_lines
from engine.domain.screening.products import match, parse_catalogue
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
        ({"monthly_debt": D(11_000)}, "DTI 77% > 55%"),
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
