"""Training data from the lead history: each lead's inputs as they were at the time, with the
outcome that followed. Read from the store, no modelling library needed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from engine.application.leads.app import Leads
from engine.domain.leads.facts import lead_facts
from engine.domain.screening.features import model_inputs
from engine.domain.screening.model_registry import check_kind
from engine.domain.shared.durations import whole_months
from engine.domain.shared.values import JSONDict

RESPONSE_WINDOW_DAYS = 14
MIN_MONTHS_ON_BOOK = 3


@dataclass(frozen=True)
class TrainingRows:
    """Model inputs with their outcomes and times, read from the store (no library needed)."""

    rows: list[JSONDict]
    outcomes: list[int]
    times: list[datetime]
    ids: list[dict[str, str]]
    description: str
    treatment: list[int] | None = None


def training_rows(
    leads: Leads, kind: str, features: list[str], now: datetime, lead_ids: list[UUID] | None = None
) -> TrainingRows:
    """Outcomes from the lead history, with the inputs as they were at the time:
    propensity — did a lead apply within RESPONSE_WINDOW_DAYS of capture (time: capture);
    credit — did a loan funded MIN_MONTHS_ON_BOOK or more months ago miss a repayment
    (time: funding). ``lead_ids``: only these leads (default: every lead)."""
    rows: list[JSONDict] = []
    outcomes: list[int] = []
    times: list[datetime] = []
    ids: list[dict[str, str]] = []
    for lead_id in leads.lead_ids() if lead_ids is None else lead_ids:
        lead = leads.get_lead(lead_id)
        if check_kind(kind) == "propensity":
            if lead.captured_at > now - timedelta(days=RESPONSE_WINDOW_DAYS):
                continue
            applied = lead.first_applied_at
            rows.append(model_inputs(lead_facts(lead, lead.captured_at), features))
            outcomes.append(
                int(applied is not None and applied <= lead.captured_at + timedelta(days=RESPONSE_WINDOW_DAYS))
            )
            times.append(lead.captured_at)
            ids.append({"lead_id": str(lead.id)})
            continue
        for loan in lead.funded_loans():
            if whole_months(loan.funded_at, now) < MIN_MONTHS_ON_BOOK:
                continue
            rows.append(model_inputs(lead_facts(lead, loan.funded_at), features))
            outcomes.append(int(loan.missed > 0))
            times.append(loan.funded_at)
            ids.append({"lead_id": str(lead.id), "application_id": loan.application_id})
    what = (
        f"leads captured {RESPONSE_WINDOW_DAYS}+ days ago; outcome: applied within {RESPONSE_WINDOW_DAYS} days"
        if kind == "propensity"
        else f"loans {MIN_MONTHS_ON_BOOK}+ months on book; outcome: any missed repayment"
    )
    return TrainingRows(rows, outcomes, times, ids, f"store ({what})")


def uplift_rows(
    leads: Leads, assignments: list[JSONDict], held_out: set[tuple[str, str]], features: list[str], now: datetime
) -> TrainingRows:
    """A journey's random experiment as training data: each lead assigned to an arm of a split
    with a holdout (``held_out``: its (step, arm) pairs; every other arm was messaged), with the
    inputs as they were at the assignment and whether the lead applied within
    RESPONSE_WINDOW_DAYS of it. Assignments younger than that window are not settled yet, and a
    lead who had applied before it was assigned tells nothing about persuasion: both left out."""
    steps = {step for step, _ in held_out}
    rows: list[JSONDict] = []
    outcomes: list[int] = []
    times: list[datetime] = []
    ids: list[dict[str, str]] = []
    treatment: list[int] = []
    window = timedelta(days=RESPONSE_WINDOW_DAYS)
    for a in assignments:
        at = datetime.fromisoformat(a["assigned_at"])
        if a["step"] not in steps or at > now - window:
            continue
        lead = leads.get_lead(UUID(a["lead_id"]))
        applied = lead.first_applied_at
        if lead.erased or (applied is not None and applied <= at):
            continue
        rows.append(model_inputs(lead_facts(lead, at), features))
        outcomes.append(int(applied is not None and applied <= at + window))
        times.append(at)
        ids.append({"lead_id": str(lead.id)})
        treatment.append(0 if (a["step"], a["arm"]) in held_out else 1)
    what = (
        f"split assignments {RESPONSE_WINDOW_DAYS}+ days ago; treatment: messaged, not held out; "
        f"outcome: applied within {RESPONSE_WINDOW_DAYS} days"
    )
    return TrainingRows(rows, outcomes, times, ids, f"store ({what})", treatment)
