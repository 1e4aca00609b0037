"""The flat facts about a lead that rules, branches and templates may read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from engine.domain.journey import CalendarOffset

if TYPE_CHECKING:
    from engine.domain.lead import Lead

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
}

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


def _num(value: Any) -> Decimal | None:
    return None if value in (None, "") else Decimal(str(value))


def lead_facts(lead: Lead, now: datetime) -> dict[str, Any]:
    """Flatten a lead into the facts above; absent optional facts are left out."""
    c, p, i, s = lead.contact, lead.profile, lead.interest, lead.source
    name = str(c.get("name") or "")
    facts: dict[str, Any] = {
        "lead_ref": str(lead.id)[:8],
        "full_name": name,
        "first_name": first_name_of(name),
        "language": c.get("language") or "zh-CN",
        "audience": lead.audience.value,
        "tier": lead.tier.value,
        "segments": list(lead.segments),
        "stage": lead.stage.value,
        "source_channel": s["channel"],
        "has_email": "yes" if c.get("email") else "no",
        "has_phone": "yes" if c.get("phone") else "no",
        "partner": s.get("partner"),
        "campaign": s.get("campaign"),
        "birth_year": p.get("birth_year"),
        "employment_type": p.get("employment_type"),
        "employer_kind": p.get("employer_kind"),
        "employer": p.get("employer"),
        "monthly_income": _num(p.get("monthly_income")),
        "monthly_debt": _num(p.get("monthly_debt")),
        "currency": p.get("currency"),
        "region": p.get("region"),
        "city": p.get("city"),
        "industry": p.get("industry"),
        "business_name": p.get("business_name"),
        "business_years": _num(p.get("business_years")),
        "business_revenue": _num(p.get("business_revenue")),
        "loan_type": i.get("loan_type"),
        "loan_amount": _num(i.get("amount")),
        "loan_term_months": _num(i.get("term_months")),
        "loan_purpose": i.get("purpose"),
        "tags": sorted(lead.tags),
        "product_fit": ("fit" if lead.offer.get("product") else "no_fit") if lead.offer else "unknown",
        "matched_product": lead.offer.get("name"),
        "matched_apr": f"{Decimal(lead.offer['apr']) * 100:.2f}%" if lead.offer.get("apr") else None,
        "matched_payment": _num(lead.offer.get("monthly_payment")),
        "timezone": c.get("timezone"),
        "captured_at": lead.captured_at,
        "last_applied_at": lead.last_applied_at,
        "last_funded_at": lead.last_funded_at,
    }
    if facts["birth_year"]:
        facts["age"] = now.year - int(facts["birth_year"])
    income, debt = facts["monthly_income"], facts["monthly_debt"]
    if income and debt is not None and income > 0:
        facts["dti"] = (debt / income).quantize(Decimal("0.0001"))
    facts.update(loan_facts(lead, now))
    facts.update(score_facts(lead))
    return {k: v for k, v in facts.items() if v is not None and v != ""}


def whole_months(start: datetime, end: datetime) -> int:
    """Calendar months from ``start`` to ``end`` (a month counts from the start of the day it
    completes, on ``end``'s calendar: the review at local midnight sees it that day)."""
    start = start.astimezone(end.tzinfo)
    months = (end.year - start.year) * 12 + end.month - start.month
    return months - 1 if end.day < start.day else months


def days_between(start: datetime, end: datetime) -> int:
    """Calendar days from ``start``'s date to ``end``'s, on ``end``'s calendar."""
    return (end.date() - start.astimezone(end.tzinfo).date()).days


def loan_facts(lead: Lead, now: datetime) -> dict[str, Any]:
    """Life-event facts: loans on book, instalments paid, maturity, arrears and declines."""

    facts: dict[str, Any] = {
        "missed_repayments": lead.missed_repayments,
        "funded_loans": sorted({loan["loan_type"] for loan in lead.loans.values() if loan["loan_type"]}),
    }
    if lead.last_missed_at is not None:
        facts["days_since_missed"] = days_between(lead.last_missed_at, now)
    if lead.last_declined_at is not None:
        facts["days_since_declined"] = days_between(lead.last_declined_at, now)
    latest: dict[str, dict[str, Any]] = {}
    for loan in lead.loans.values():
        kind = loan["loan_type"]
        if kind and (kind not in latest or loan["funded_at"] > latest[kind]["funded_at"]):
            latest[kind] = loan
    for kind, loan in latest.items():
        months = max(0, whole_months(loan["funded_at"], now))
        term = int(loan["term_months"] or 0)
        facts[f"{kind}_months_on_book"] = months
        facts[f"{kind}_on_time_payments"] = max(0, (min(months, term) if term else months) - int(loan["missed"]))
        if term:
            matures = CalendarOffset(months=term).after(loan["funded_at"])
            facts[f"{kind}_days_to_maturity"] = (matures.astimezone(now.tzinfo).date() - now.date()).days
    return facts


def score_facts(lead: Lead) -> dict[str, Any]:
    """The recorded scores, as facts journeys branch on."""
    facts: dict[str, Any] = {}
    credit = lead.scores.get("credit")
    if credit:
        facts["credit_score"] = credit["score"]
        facts["credit_band"] = credit["band"]
        facts["credit_reasons"] = [r["code"] + " " + r["characteristic"] for r in credit["reasons"]]
    propensity = lead.scores.get("propensity")
    if propensity:
        facts["propensity"] = Decimal(propensity["probability"])
        facts["propensity_band"] = propensity["band"]
    return facts


def first_name_of(name: str) -> str:
    """Given name for a salutation: Chinese names keep the full name, others the first word."""
    name = name.strip()
    if not name:
        return ""
    if any("\u4e00" <= ch <= "\u9fff" for ch in name):
        return name
    return name.split()[0]
