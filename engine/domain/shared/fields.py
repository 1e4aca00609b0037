"""The facts vocabulary: every fact about a lead that a rule, branch or template may read.

Conditions, segments, products and journeys all speak it; ``leads.facts`` computes the values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

FieldType = Literal["number", "text", "list", "date"]


@dataclass(frozen=True)
class FieldSpec:
    """One readable fact: its type, whether every lead has it, and what it means."""

    type: FieldType
    always: bool
    doc: str


#: Every fact a rule, branch or template can use; names here are the marketer's vocabulary.
FIELDS: dict[str, FieldSpec] = {
    "lead_ref": FieldSpec("text", True, "short reference of the lead"),
    "full_name": FieldSpec("text", True, "name as captured"),
    "first_name": FieldSpec("text", True, "given name (or the whole name if it cannot be split)"),
    "language": FieldSpec("text", True, "preferred language, e.g. zh-CN or en"),
    "audience": FieldSpec("text", True, "young_professional, sme, senior or general"),
    "tier": FieldSpec("text", True, "prime, near_prime or other"),
    "segments": FieldSpec("list", True, "ids of the segments the lead is in"),
    "stage": FieldSpec("text", True, "new, contacted, engaged, applied, approved, funded, lost"),
    "engagement_score": FieldSpec(
        "number", True, "recency-weighted clicks on tracked links: each counts 1, halving every 14 days"
    ),
    "clicked": FieldSpec(
        "list", False, "journey branches only: the steps of this enrolment whose message the lead clicked"
    ),
    "source_channel": FieldSpec("text", True, "where the lead came from"),
    "partner": FieldSpec("text", False, "partner that referred the lead"),
    "campaign": FieldSpec("text", False, "campaign / UTM campaign"),
    "has_email": FieldSpec("text", True, "yes or no"),
    "has_phone": FieldSpec("text", True, "yes or no"),
    "age": FieldSpec("number", False, "age in whole years (tone and channel only, never offers)"),
    "birth_year": FieldSpec("number", False, "year of birth"),
    "employment_type": FieldSpec("text", False, "salaried, freelance, self_employed, ..."),
    "employer_kind": FieldSpec("text", False, "government, state_owned, large_private, ..."),
    "employer": FieldSpec("text", False, "employer name"),
    "monthly_income": FieldSpec("number", False, "monthly income"),
    "monthly_debt": FieldSpec("number", False, "monthly debt payments"),
    "dti": FieldSpec("number", False, "monthly debt / monthly income, as a fraction"),
    "currency": FieldSpec("text", False, "currency of income and amounts"),
    "region": FieldSpec("text", False, "province / state"),
    "city": FieldSpec("text", False, "city"),
    "industry": FieldSpec("text", False, "industry (of the employer or business)"),
    "business_name": FieldSpec("text", False, "SME: registered business name"),
    "business_years": FieldSpec("number", False, "SME: years trading"),
    "business_revenue": FieldSpec("number", False, "SME: annual revenue"),
    "loan_type": FieldSpec("text", False, "mortgage, business, auto, consumer, renovation, ..."),
    "loan_amount": FieldSpec("number", False, "amount the lead asked about"),
    "loan_term_months": FieldSpec("number", False, "term the lead asked about"),
    "loan_purpose": FieldSpec("text", False, "purpose in the lead's words"),
    "collateral_value": FieldSpec("number", False, "value of the home or car a secured loan is for"),
    "ltv": FieldSpec("number", False, "loan amount / collateral value, as a fraction"),
    "tags": FieldSpec("list", True, "tags set by journeys or agents"),
    "product_fit": FieldSpec("text", True, "fit, no_fit or unknown (no loan type given)"),
    "matched_product": FieldSpec("text", False, "name of the cheapest eligible product, in the lead's language"),
    "matched_apr": FieldSpec("text", False, "its APR (IRR, fees included), e.g. 7.20%"),
    "matched_payment": FieldSpec("number", False, "its monthly payment for the amount and term asked about"),
    "timezone": FieldSpec("text", False, "the lead's IANA time zone (from the phone number or region)"),
    "captured_at": FieldSpec("date", True, "when the lead was first captured"),
    "last_applied_at": FieldSpec("date", False, "when the lead last submitted an application"),
    "last_funded_at": FieldSpec("date", False, "when the lead's last loan was funded"),
    "missed_repayments": FieldSpec("number", True, "repayments missed on loans with this lender"),
    "days_since_missed": FieldSpec("number", False, "days since the last missed repayment"),
    "days_since_declined": FieldSpec("number", False, "days since the last declined application"),
    "funded_loans": FieldSpec("list", True, "types of the loans funded by this lender"),
    "credit_score": FieldSpec("number", False, "credit pre-screen score (600 = 50:1 good:bad, +20 doubles)"),
    "credit_band": FieldSpec("text", False, "credit pre-screen band, A (best) to E"),
    "credit_reasons": FieldSpec("list", False, "reason codes: characteristics furthest below their best"),
    "propensity": FieldSpec("number", False, "probability the lead applies (propensity model)"),
    "propensity_band": FieldSpec("text", False, "high, medium or low propensity to apply"),
    "uplift_band": FieldSpec(
        "text",
        False,
        "this journey's uplift model: persuadable, sure_thing, lost_cause or do_not_disturb",
    ),
    "uplift": FieldSpec("number", False, "this journey's uplift model: points messaging adds to the chance to apply"),
}

#: The facts each journey's own uplift model holds about a lead, by journey id; a journey reads
#: its own as ``uplift_band`` and ``uplift`` (``journey_facts`` in the journey interpreter).
UPLIFT_BY_JOURNEY = "uplift_by_journey"

#: Per loan type (mortgage, auto, business, ...): the life-event facts cross-sell triggers read,
#: from the latest funded loan of that type (DOMAIN.md cross-sell triggers).
LOAN_TYPES = ("mortgage", "business", "auto", "consumer", "renovation", "agricultural")
for _t in LOAN_TYPES:
    FIELDS[f"{_t}_months_on_book"] = FieldSpec("number", False, f"whole months since the latest {_t} loan was funded")
    FIELDS[f"{_t}_on_time_payments"] = FieldSpec(
        "number", False, f"monthly instalments of the latest {_t} loan due so far, less those missed"
    )
    FIELDS[f"{_t}_days_to_maturity"] = FieldSpec(
        "number", False, f"days until the latest {_t} loan matures (when its term is known)"
    )
