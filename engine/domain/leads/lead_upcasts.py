"""How stored Lead events and snapshots of earlier versions are read today (each upcaster takes
one version's state to the next; the event classes name them)."""

from __future__ import annotations

from engine.domain.leads.records import Loan, Offer, ScoreRecord
from engine.domain.shared.money import stored_amount
from engine.domain.shared.values import JSONDict


def lead_v1_v2(state: JSONDict) -> None:
    """A v1 snapshot starts the loans, scores and decline/arrears dates empty."""
    state.setdefault("loans", {})
    state.setdefault("application_types", {})
    state.setdefault("scores", {})
    state.setdefault("first_applied_at", state.get("last_applied_at"))
    state.setdefault("last_declined_at", None)
    state.setdefault("last_missed_at", None)


def lead_v2_v3(state: JSONDict) -> None:
    """A v2 snapshot kept loans, scores and the offer as dicts."""
    state["loans"] = {a: Loan.of(a, loan) for a, loan in state["loans"].items()}
    state["scores"] = {k: ScoreRecord.of(k, score) for k, score in state["scores"].items()}
    state["offer"] = Offer.of(state["offer"]) if state.get("offer") else None


def products_matched_v1_v2(state: JSONDict) -> None:
    state["inputs"] = {}  # v1 did not record them


def loan_funded_v1_v2(state: JSONDict) -> None:
    state["loan_type"] = ""  # taken from the application when the loan is replayed
    state["term_months"] = 0  # unknown


def amount_as_money(state: JSONDict) -> None:
    """An amount stored as bare text, as Money in the lender's currency (None: not stated)."""
    state["amount"] = stored_amount(state["amount"])
