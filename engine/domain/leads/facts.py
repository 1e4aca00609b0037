"""The flat facts about a lead that rules, branches and templates may read."""

from __future__ import annotations

import threading
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from engine.domain.leads.engagement import engagement_score
from engine.domain.screening.affordability import loan_to_value
from engine.domain.screening.uplift import journey_of
from engine.domain.shared.durations import CalendarOffset, days_between, whole_months
from engine.domain.shared.fields import UPLIFT_BY_JOURNEY

if TYPE_CHECKING:
    from engine.domain.leads.lead import Lead
    from engine.domain.leads.records import Loan


def _num(value: Any) -> Decimal | None:
    return None if value in (None, "") else Decimal(str(value))


#: Each thread's last few leads' facts: (id(lead), version, moment) → (lead, facts). The checks
#: before a send and its rendering read the same lead at the same moment, as do a journey's
#: reactions to one lead's events; its version changes with every event, so a hit is current.
_recent = threading.local()
RECENT_FACTS = 8


def lead_facts(lead: Lead, now: datetime) -> dict[str, Any]:
    """Flatten a lead into the facts above; absent optional facts are left out. A copy: the
    caller may change it."""
    try:
        recent: dict[tuple[int, int, datetime], tuple[Lead, dict[str, Any]]] = _recent.facts
    except AttributeError:
        recent = _recent.facts = {}
    key = (id(lead), lead.version, now)
    hit = recent.get(key)
    if hit is not None and hit[0] is lead:
        return dict(hit[1])
    facts = _facts(lead, now)
    if len(recent) >= RECENT_FACTS:
        del recent[next(iter(recent))]  # the oldest
    recent[key] = (lead, facts)
    return dict(facts)


def _facts(lead: Lead, now: datetime) -> dict[str, Any]:
    c, p, i, s = lead.contact, lead.profile, lead.interest, lead.source
    offer = lead.matched_offer
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
        "engagement_score": engagement_score(getattr(lead, "clicks", []), now),
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
        "collateral_value": _num(i.get("collateral_value")),
        "tags": sorted(lead.tags),
        "product_fit": ("fit" if offer.fits else "no_fit") if offer else "unknown",
        "matched_product": offer.name if offer else None,
        "matched_apr": f"{Decimal(offer.apr) * 100:.2f}%" if offer and offer.apr else None,
        "matched_payment": _num(offer.monthly_payment) if offer else None,
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
    amount, value = facts["loan_amount"], facts["collateral_value"]
    if amount and value and value > 0:
        facts["ltv"] = loan_to_value(amount, value)
    facts.update(loan_facts(lead, now))
    facts.update(score_facts(lead))
    return {k: v for k, v in facts.items() if v is not None and v != ""}


#: The facts screening changes: a lead's segments (``segment``) and scores (``record_score``).
SCREENED = ("audience", "tier", "segments", "credit_score", "credit_band", "credit_reasons", "propensity",
            "propensity_band", UPLIFT_BY_JOURNEY)  # fmt: skip


def with_screening(facts: dict[str, Any], lead: Lead) -> dict[str, Any]:
    """``facts`` of ``lead`` (from ``lead_facts``) with what screening changed since read again —
    its audience, tier, segments and scores — and everything else as it was: equal to
    ``lead_facts(lead, now)`` when only segments and scores changed, without recomputing it all."""
    out = {k: v for k, v in facts.items() if k not in SCREENED}
    fresh = {"audience": lead.audience.value, "tier": lead.tier.value, "segments": list(lead.segments)}
    fresh.update(score_facts(lead))
    out.update({k: v for k, v in fresh.items() if v is not None and v != ""})
    return out


def loan_facts(lead: Lead, now: datetime) -> dict[str, Any]:
    """Life-event facts: loans on book, instalments paid, maturity, arrears and declines."""

    facts: dict[str, Any] = {
        "missed_repayments": lead.missed_repayments,
        "funded_loans": sorted({loan.loan_type for loan in lead.funded_loans() if loan.loan_type}),
    }
    if lead.last_missed_at is not None:
        facts["days_since_missed"] = days_between(lead.last_missed_at, now)
    if lead.last_declined_at is not None:
        facts["days_since_declined"] = days_between(lead.last_declined_at, now)
    latest: dict[str, Loan] = {}
    for loan in lead.funded_loans():
        kind = loan.loan_type
        if kind and (kind not in latest or loan.funded_at > latest[kind].funded_at):
            latest[kind] = loan
    for kind, loan in latest.items():
        months = max(0, whole_months(loan.funded_at, now))
        term = loan.term_months
        facts[f"{kind}_months_on_book"] = months
        facts[f"{kind}_on_time_payments"] = max(0, (min(months, term) if term else months) - loan.missed)
        if term:
            matures = CalendarOffset(months=term).after(loan.funded_at)
            facts[f"{kind}_days_to_maturity"] = (matures.astimezone(now.tzinfo).date() - now.date()).days
    return facts


def score_facts(lead: Lead) -> dict[str, Any]:
    """The recorded scores, as facts journeys branch on."""
    facts: dict[str, Any] = {}
    credit = lead.score_of("credit")
    if credit:
        facts["credit_score"] = credit.score
        facts["credit_band"] = credit.band
        facts["credit_reasons"] = [r["code"] + " " + r["characteristic"] for r in credit.reasons]
    propensity = lead.score_of("propensity")
    if propensity:
        facts["propensity"] = propensity.probability
        facts["propensity_band"] = propensity.band
    by_journey = {}
    for kind in lead.scores:
        journey = journey_of(kind)
        uplift = lead.score_of(kind) if journey else None
        if journey and uplift:
            by_journey[journey] = {"uplift_band": uplift.band, "uplift": (uplift.score or 0) / 100}
    if by_journey:
        facts[UPLIFT_BY_JOURNEY] = by_journey
    return facts


def first_name_of(name: str) -> str:
    """Given name for a salutation: Chinese names keep the full name, others the first word."""
    name = name.strip()
    if not name:
        return ""
    if any("\u4e00" <= ch <= "\u9fff" for ch in name):
        return name
    return name.split()[0]
