"""What the scoring models read from a lead: each model's default features, and the named inputs
taken from a lead's facts (numbers as floats, text as text, absent as absent)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

#: Credit pre-screen characteristics: capacity and stability only. No prohibited basis, no
#: engagement signal, and no region (a stand-in for origin in some markets).
CREDIT_FEATURES: tuple[str, ...] = (
    "employment_type",
    "employer_kind",
    "monthly_income",
    "dti",
    "loan_type",
    "loan_to_income",
    "loan_term_months",
    "business_years",
    "industry",
)

#: Propensity may add channel and engagement signals; still no prohibited basis, and not the
#: audience (derived from age) or the language (a stand-in for national origin).
PROPENSITY_FEATURES: tuple[str, ...] = (
    *CREDIT_FEATURES,
    "source_channel",
    "partner",
    "campaign",
    "has_email",
    "has_phone",
    "region",
    "tier",
    "loan_amount",
)

DEFAULT_FEATURES = {"credit": CREDIT_FEATURES, "propensity": PROPENSITY_FEATURES}


def model_inputs(facts: dict[str, Any], features: Iterable[str]) -> dict[str, Any]:
    """The named inputs from a lead's facts: numbers as floats, text as text, absent as absent."""
    derived = dict(facts)
    income, amount = facts.get("monthly_income"), facts.get("loan_amount")
    if income and amount is not None and float(income) > 0:
        derived["loan_to_income"] = round(float(amount) / (12 * float(income)), 4)
    out: dict[str, Any] = {}
    for name in features:
        value = derived.get(name)
        if value is None or value == "" or isinstance(value, list):
            continue
        out[name] = value if isinstance(value, str) else float(value)
    return out
