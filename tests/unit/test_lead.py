"""The Lead aggregate, given / when / then."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from engine.domain.leads.lead import Lead
from engine.domain.shared.errors import InvalidLeadError
from engine.domain.shared.money import Money
from engine.domain.shared.values import ConsentChannel, ConsentPurpose, Stage

AT = datetime(2026, 3, 2, tzinfo=UTC)


def cny(amount: int) -> Money:
    return Money(Decimal(amount), "CNY")


def new_lead() -> Lead:
    return Lead(
        source={"channel": "web_form", "external_id": "W1"},
        contact={"name": "Li Wei", "phone": "+8613800138000"},
        profile={},
        interest={},
        contact_issues=[],
        captured_at=AT,
    )


def test_id_is_deterministic_from_source_and_external_id() -> None:
    assert new_lead().id == new_lead().id


def test_stage_moves_forward_only_except_lost() -> None:
    lead = new_lead()
    assert lead.advance_to(Stage.ENGAGED, "clicked", AT)
    assert not lead.advance_to(Stage.CONTACTED, "late message", AT)
    assert lead.stage is Stage.ENGAGED
    assert lead.advance_to(Stage.LOST, "declined", AT)
    assert lead.advance_to(Stage.APPLIED, "applied again", AT)


def test_application_lifecycle_moves_stage() -> None:
    lead = new_lead()
    lead.submit_application("A1", "consumer", cny(50000), AT)
    lead.approve_application("A1", cny(50000), AT)
    lead.fund_loan("A1", cny(50000), AT)
    assert lead.stage is Stage.FUNDED
    assert [type(e).__name__ for e in lead.collect_events()][-6:] == [
        "ApplicationSubmitted",
        "StageChanged",
        "ApplicationApproved",
        "StageChanged",
        "LoanFunded",
        "StageChanged",
    ]


def test_a_funded_loan_needs_its_amount() -> None:
    """A funding with no amount stopped the funnel view and the referral rewards for good
    (Decimal(''): every report after it was stale); it is refused, and nothing is recorded."""
    lead = new_lead()
    lead.submit_application("A1", "consumer", cny(50000), AT)
    lead.collect_events()
    for amount in (None, cny(0), cny(-5)):
        with pytest.raises(InvalidLeadError, match="a funded loan needs its amount"):
            lead.fund_loan("A1", amount, AT)
    assert lead.collect_events() == []


def test_approving_unknown_application_is_refused_without_events() -> None:
    lead = new_lead()
    lead.collect_events()
    with pytest.raises(InvalidLeadError, match="no application 'A9'"):
        lead.approve_application("A9", cny(1), AT)
    assert lead.collect_events() == []


def test_decline_loses_the_lead_unless_another_application_is_open() -> None:
    lead = new_lead()
    lead.submit_application("A1", "consumer", cny(1), AT)
    lead.submit_application("A2", "auto", cny(1), AT)
    lead.decline_application("A1", "DTI", AT)
    assert lead.stage is Stage.APPLIED
    lead.decline_application("A2", "DTI", AT)
    assert lead.stage is Stage.LOST  # type: ignore[comparison-overlap]


def test_consent_grant_and_withdraw_are_idempotent() -> None:
    lead = new_lead()
    assert lead.grant_consent(ConsentChannel.SMS, ConsentPurpose.MARKETING, "form", "ticked", AT)
    assert not lead.grant_consent(ConsentChannel.SMS, ConsentPurpose.MARKETING, "form", "ticked", AT)
    assert lead.withdraw_consent(ConsentChannel.SMS, ConsentPurpose.MARKETING, "sms", "TD", AT)
    assert not lead.has_consent(ConsentChannel.SMS, ConsentPurpose.MARKETING)
    assert not lead.withdraw_consent(ConsentChannel.SMS, ConsentPurpose.MARKETING, "sms", "TD", AT)


def test_update_records_only_changes() -> None:
    lead = new_lead()
    lead.collect_events()
    assert not lead.update({"contact": {"name": "Li Wei"}}, {"channel": "web_form"}, AT)
    assert lead.update({"profile": {"city": "Beijing"}}, {"channel": "web_form"}, AT)
    assert lead.profile == {"city": "Beijing"}


def test_a_delivery_is_in_doubt_only_between_its_marker_and_an_outcome_or_retry() -> None:
    from uuid import uuid4

    from engine.domain.delivery.delivery import Delivery

    at = datetime(2026, 3, 2, tzinfo=UTC)
    d = Delivery(
        send_id=uuid4(), lead_id=uuid4(), enrolment_id=uuid4(), journey_id="j", journey_version=1,
        step="s", channel="email", template="t", reason="", at=at,
    )  # fmt: skip
    d.defer(at, "server down", at, transient=True)  # never left: not in doubt, however often
    d.defer(at, "server down", at, transient=True)
    assert not d.in_doubt and d.trouble_since == at
    d.dispatching(at)
    assert d.in_doubt  # a crash now: it may have left
    d.defer(at, "retry after: 451", at, transient=True)
    assert not d.in_doubt
    d.dispatching(at)
    d.mark_sent("a@example.com", "en", "v", "sha", "ref", at)
    assert not d.in_doubt and d.is_settled


@pytest.mark.parametrize("scored", [False, True])
def test_facts_refreshed_after_screening_equal_facts_read_again(scored: bool) -> None:
    """Capture reads a lead's facts once and refreshes only what screening changed (segments,
    scores): the result is exactly what reading every fact again gives."""
    from engine.domain.leads.facts import lead_facts, with_screening
    from engine.domain.shared.values import Audience, Tier

    lead = Lead(
        source={"channel": "partner_estate_agent", "external_id": "EA-9", "partner": "Lianjia"},
        contact={"name": "Grace Lee", "phone": "+8613800138000", "email": "grace@example.com", "language": "en"},
        profile={"birth_year": 1990, "employment_type": "salaried", "monthly_income": "40000", "monthly_debt": "2000"},
        interest={"loan_type": "mortgage", "amount": "1000000", "collateral_value": "1500000"},
        contact_issues=[],
        captured_at=AT,
    )
    lead.record_score("credit", 1, 0.02, 640, "B", [{"code": "R01", "characteristic": "dti"}], {"dti": 0.05}, AT)
    before = lead_facts(lead, AT)
    lead.segment(Audience.YOUNG_PROFESSIONAL, Tier.PRIME, ["mortgage_interest"], {}, "v1", AT)
    if scored:
        lead.record_score("credit", 2, 0.01, 700, "A", [], {"dti": 0.05}, AT)
        lead.record_score("propensity", 1, 0.3, None, "high", [], {}, AT)
        lead.record_score("uplift:young-professionals", 1, 0.1, 5, "persuadable", [], {}, AT)
    refreshed = with_screening(before, lead)
    assert refreshed == lead_facts(lead, AT)
    assert refreshed["audience"] == "young_professional" and refreshed["segments"] == ["mortgage_interest"]
    assert refreshed["credit_band"] == ("A" if scored else "B")


def test_facts_read_again_at_the_same_moment_are_a_copy_and_follow_every_event() -> None:
    """``lead_facts`` remembers the last few (lead, version, moment): the checks before a send and
    its rendering read them once. What a caller changes stays in its copy; an event (a new
    version) or another moment reads them afresh."""
    from engine.domain.leads.facts import lead_facts
    from engine.domain.shared.values import Audience, Tier

    lead = Lead(
        source={"channel": "web_form"},
        contact={"name": "Wei Zhang", "email": "wei@example.com"},
        profile={"birth_year": 1990},
        interest={"loan_type": "personal", "amount": "50000"},
        contact_issues=[],
        captured_at=AT,
    )
    first = lead_facts(lead, AT)
    first["audience"] = "changed by a caller"
    again = lead_facts(lead, AT)
    assert again is not first and again["audience"] == lead.audience.value and "segments" in again
    lead.segment(Audience.YOUNG_PROFESSIONAL, Tier.PRIME, ["personal_interest"], {}, "v1", AT)
    assert lead_facts(lead, AT)["segments"] == ["personal_interest"]
    later = AT.replace(year=AT.year + 3)
    assert lead_facts(lead, later)["age"] == lead_facts(lead, AT)["age"] + 3


def test_a_lead_keeps_what_it_always_has_in_slots() -> None:
    """A cached lead's state is in slots (``LeadState.__slots__``): a state attribute every lead
    has that is left out of them lands in the instance dict, which CPython stops sharing between
    instances beyond 30 keys (a cached lead then takes 1.3 KB more)."""
    from engine.domain.leads.state import LeadState

    slots = set(LeadState.__slots__)
    defaults = {name for name in LeadState.__annotations__ if hasattr(LeadState, name) and name not in slots}
    assert defaults == {"touches", "conflicts", "erased"}  # rarely set: in the dict when they are
    assert set(LeadState.__annotations__) - defaults == slots
    lead = new_lead()
    lead.advance_to(Stage.ENGAGED, "clicked", AT)
    assert set(vars(lead)) == {"_id", "_version", "_created_on", "_modified_on", "_pending_events"}
