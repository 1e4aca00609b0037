"""What a lead's history says about its loans, scores and matched offer, as value objects.

The Lead keeps them as plain dicts (that is what its stored snapshots hold); these are the
typed views every reader uses instead of string keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any


@dataclass(frozen=True)
class Loan:
    """A loan this lender funded for the lead, and the repayments missed on it."""

    application_id: str
    loan_type: str
    amount: str
    funded_at: datetime
    term_months: int
    missed: int

    @classmethod
    def of(cls, application_id: str, state: dict[str, Any]) -> Loan:
        return cls(
            application_id,
            state["loan_type"],
            state["amount"],
            state["funded_at"],
            int(state["term_months"] or 0),
            int(state["missed"]),
        )


@dataclass(frozen=True)
class ScoreRecord:
    """The latest score of one kind of model: its version, result and the inputs it scored."""

    kind: str
    model_version: int
    probability: Decimal
    score: int | None
    band: str
    reasons: list[dict[str, Any]]
    inputs: dict[str, Any]
    at: datetime

    @classmethod
    def of(cls, kind: str, state: dict[str, Any]) -> ScoreRecord:
        return cls(
            kind,
            int(state["model_version"]),
            Decimal(state["probability"]),
            state["score"],
            state["band"],
            state["reasons"],
            state["inputs"],
            state["at"],
        )

    def scored(self, model_version: int, inputs: dict[str, Any]) -> bool:
        """Whether this model version already scored these inputs (nothing new to record)."""
        return self.model_version == model_version and self.inputs == inputs


@dataclass(frozen=True)
class Offer:
    """The product matched to the lead (an empty ``product`` means nothing fits)."""

    product: str
    name: str
    apr: str
    monthly_payment: str
    dti_after: str
    reasons: dict[str, Any]

    @classmethod
    def of(cls, state: dict[str, Any]) -> Offer:
        return cls(
            state.get("product", ""),
            state.get("name", ""),
            state.get("apr", ""),
            state.get("monthly_payment", ""),
            state.get("dti_after", ""),
            state.get("reasons", {}),
        )

    @property
    def fits(self) -> bool:
        return bool(self.product)
