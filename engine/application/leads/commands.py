"""Commands: validated requests to change the write side (imperative, plain values)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal
from uuid import UUID

from engine.domain.shared.values import JSONDict


@dataclass(frozen=True)
class CaptureLead:
    """Capture (or re-capture) one lead from a source."""

    source: JSONDict
    contact: JSONDict
    profile: JSONDict
    interest: JSONDict
    consents: dict[str, bool] = field(default_factory=dict)  # "email" -> True
    contact_issues: tuple[str, ...] = ()
    captured_at: datetime | None = None
    origin: str = ""  # e.g. "leads.csv:12", kept as consent evidence


LifecycleKind = Literal[
    "application_submitted",
    "application_approved",
    "application_declined",
    "loan_funded",
    "repayment_missed",
    "stage_changed",
    "consent_granted",
    "consent_withdrawn",
    "tagged",
]


@dataclass(frozen=True)
class LeadRef:
    """How a lifecycle event names its lead: by id, by source id, or by phone/e-mail."""

    lead_id: UUID | None = None
    source_channel: str | None = None
    external_id: str | None = None
    phone: str | None = None
    email: str | None = None


@dataclass(frozen=True)
class RecordLifecycle:
    """A lifecycle fact a lender sends in about a lead."""

    lead: LeadRef
    kind: LifecycleKind
    at: datetime | None = None
    application_id: str = ""
    loan_type: str = ""
    amount: str = ""
    reason: str = ""
    days_past_due: int = 0
    term_months: int = 0  # loan_funded: the loan's term, when the lender sends it
    stage: str = ""
    channel: str = ""
    tag: str = ""
    #: application_submitted: the reference of the tracked link it came through (a conversion).
    click_ref: str = ""
    origin: str = ""
