"""What a lead's history says about its loans, scores and matched offer, as value objects.

The Lead keeps them as these typed values (stored with their own transcodings, see
``engine.eventstore.values``); ``of`` reads the dicts an older snapshot kept.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from engine.domain.shared.money import Money, stored_amount


@dataclass(frozen=True)
class Loan:
    """A loan this lender funded for the lead, and the repayments missed on it."""

    application_id: str
    loan_type: str
    amount: Money | None  # None: funded before huoke required the amount
    funded_at: datetime
    term_months: int
    missed: int

    @classmethod
    def of(cls, application_id: str, state: dict[str, Any]) -> Loan:
        """A loan as a version-2 snapshot kept it (a dict, the amount as bare text)."""
        return cls(
            application_id,
            state["loan_type"],
            stored_amount(state["amount"]),
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

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def fits(self) -> bool:
        return bool(self.product)
