"""What of a lead is personal and what an erasure keeps: the fields sealed with the lead's own
key (unreadable for good once it is erased) and the records the lender must retain."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from engine.domain.leads.lead import Lead

#: What an erasure keeps, and why (lending and consent records the lender must retain; none of it
#: names the person once the data key is gone).
RETAINED = (
    "stage history and lifecycle facts (applications, approvals, loans: amounts and dates) - credit records",
    "consent and opt-out history (channel, purpose, time) - proof of consent",
    "suppression-list entry (keyed hash of phone and e-mail) - never contacted or re-imported again",
    "messages sent (time, channel, template, outcome) - marketing records",
    "scores' bands and product matches (no inputs) - fair-lending monitoring",
)

#: The personal fields of each Lead event, sealed with the lead's own key in the store, and what
#: a reader gets in their place once the lead is erased (crypto-shredding). Everything else —
#: stages, applications, loans, consent channel and time, scores' bands — stays readable, as
#: lending rules require it kept (README: erasure).
PII_FIELDS: dict[type[Any], dict[str, Any]] = {
    Lead.Captured: {
        "contact": {},
        "profile": {},
        "interest": {},
        "contact_issues": [],
        "consent_evidence": [],
        "screened_personal": [],
    },
    Lead.ProfileUpdated: {"changes": {}},
    Lead.DataConflicted: {"conflicts": {}},
    Lead.Segmented: {"reasons": {}},
    # The payment and the DTI with the loan together give the income: personal like the inputs.
    Lead.ProductsMatched: {"inputs": {}, "monthly_payment": "", "dti_after": ""},
    Lead.Scored: {"inputs": {}, "reasons": []},
    Lead.ConsentGranted: {"evidence": "(erased)"},
    Lead.ConsentRequested: {"evidence": "(erased)"},
    Lead.ConsentWithdrawn: {"evidence": "(erased)"},
    # The operator's words (they may quote the request): sealed, never on the bus or webhooks.
    Lead.Erased: {"reason": "(sealed)"},
}
#: The key that seals operators' notes (not the lead's own key: the reason an erasure was carried
#: out must stay readable to the lender after it).
OPERATOR_NOTES_KEY = UUID(int=1)
#: Events sealed under a fixed key instead of their lead's.
PII_OWNERS: dict[type[Any], UUID] = {Lead.Erased: OPERATOR_NOTES_KEY}
