"""Which lead events the journeys react to, and the entry triggers each carries (a capture, a
stage reached, a segment entered, a lifecycle event with its application id, a double opt-in)."""

from __future__ import annotations

from typing import Any

from eventsourcing.utils import get_topic

from engine.domain.leads.lead import Lead, told

LIFECYCLE: dict[type[Any], str] = {
    Lead.ApplicationSubmitted: "application_submitted",
    Lead.ApplicationApproved: "application_approved",
    Lead.ApplicationDeclined: "application_declined",
    Lead.LoanFunded: "loan_funded",
    Lead.RepaymentMissed: "repayment_missed",
    Lead.ReferredFriendApplied: "referred_friend_applied",
    Lead.ReferralRewarded: "referral_rewarded",
}

#: Lead events the reactor reacts to (filtered in the database).
_REACTS_TO: list[type[Any]] = [
    Lead.Captured,
    Lead.StageChanged,
    Lead.Segmented,
    Lead.ProfileUpdated,
    Lead.ConsentWithdrawn,
    Lead.Tagged,
    Lead.ConsentRequested,
    Lead.Erased,
    Lead.LinkClicked,
    *LIFECYCLE.keys(),
]
LEAD_TOPICS = [get_topic(cls) for cls in _REACTS_TO]


def entry_triggers(e: Any) -> list[tuple[str, str]]:
    """The entry triggers a lead event carries, with the entry key (application id)."""
    if isinstance(e, Lead.Captured):  # and the segments its first screening entered, if it records it
        return [
            ("lead_captured", ""),
            *(t for s in told(e)[1:] if isinstance(s, Lead.Segmented) for t in entry_triggers(s)),
        ]
    if isinstance(e, Lead.StageChanged):
        return [(f"stage:{e.to_stage}", "")]
    if isinstance(e, Lead.Segmented):
        return [(f"segment:{s}", "") for s in e.entered]
    if type(e) in LIFECYCLE:
        return [(f"event:{LIFECYCLE[type(e)]}", e.application_id)]
    if isinstance(e, Lead.ConsentRequested):
        return [("consent_requested", "")]
    return []
