"""Amounts are Money in events (an amount with its currency, exact to the minor unit): new events
carry it, and events stored as bare text before read back as Money in the lender's currency."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from engine.application.events_out import wire_event
from engine.domain.leads.lead import Lead
from engine.domain.marketing.costs import CostEntry
from engine.domain.referrals.referral import Referral
from engine.domain.shared.money import Money
from engine.eventstore.compression import StoredStateCompressor
from engine.eventstore.values import StoreApplication
from tests.conftest import ROOT, START, MakeEngine
from tests.helpers import lifecycle, young_pro

FIXTURE = ROOT / "tests" / "fixtures" / "amounts_before_money.json"


def _stored(e: dict[str, str]) -> StoredEvent:
    return StoredEvent(UUID(e["originator_id"]), int(e["originator_version"]), e["topic"], e["state"].encode())


def test_amounts_stored_as_text_read_back_as_money_in_the_lenders_currency(make_engine: MakeEngine) -> None:
    """Fixture: events as stored at 6893e0a (amounts as bare text), from a demo store."""
    events = json.loads(FIXTURE.read_text(encoding="utf-8"))["events"]
    engine = make_engine(settings={"currency": "HKD"})
    read = [engine.leads.mapper.to_domain_event(_stored(e)) for e in events]
    submitted, approved, funded, qualified, not_qualified, _, recorded, revised = read
    assert isinstance(submitted, Lead.ApplicationSubmitted) and submitted.amount == Money(Decimal(40000), "HKD")
    assert isinstance(approved, Lead.ApplicationApproved) and approved.amount == Money(Decimal(40000), "HKD")
    assert isinstance(funded, Lead.LoanFunded) and funded.amount == Money(Decimal(4220000), "HKD")
    assert (funded.loan_type, funded.term_months) == ("business", 24)
    assert isinstance(qualified, Referral.Qualified) and qualified.amount == Money(Decimal(60000), "HKD")
    assert isinstance(not_qualified, Referral.NotQualified) and not_qualified.amount == Money(Decimal(110000), "HKD")
    # a cost entry always said its currency: that one stays, whatever the lender's is now
    assert isinstance(recorded, CostEntry.Recorded) and recorded.amount == Money(Decimal(1000), "CNY")
    assert isinstance(revised, CostEntry.Revised) and revised.amount == Decimal("1100.50")


def test_a_cost_entry_stored_before_money_reads_with_its_revision() -> None:
    events = json.loads(FIXTURE.read_text(encoding="utf-8"))["events"][-2:]
    app = StoreApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    app.recorder.insert_events([_stored(e) for e in events])
    entry: CostEntry = app.repository.get(UUID(events[0]["originator_id"]))
    assert entry.amount == Money(Decimal("1100.50"), "CNY") and entry.revisions == 1


def test_new_events_carry_money_and_the_lead_keeps_typed_loans(make_engine: MakeEngine) -> None:
    engine = make_engine(settings={"currency": "HKD"})
    ref = young_pro(1)
    lead_id = engine.leads.capture_leads([ref])[0].lead_id
    assert lead_id is not None
    at = START + timedelta(days=1)
    outcomes = engine.leads.record_lifecycle(
        [
            lifecycle("application_submitted", ref, at, application_id="A1", loan_type="consumer", amount="80000"),
            lifecycle("application_approved", ref, at, application_id="A1", amount=""),
            lifecycle("loan_funded", ref, at, application_id="A1", amount="79999.995", term_months=24),
        ]
    )
    assert not any(o.error for o in outcomes), outcomes
    events = list(engine.leads.events.get(lead_id))
    submitted = next(e for e in events if isinstance(e, Lead.ApplicationSubmitted))
    approved = next(e for e in events if isinstance(e, Lead.ApplicationApproved))
    funded = next(e for e in events if isinstance(e, Lead.LoanFunded))
    assert submitted.amount == Money(Decimal(80000), "HKD") and approved.amount is None
    assert funded.amount == Money(Decimal("80000.00"), "HKD")  # exact to the cent, half-even
    lead = engine.leads.get_lead(lead_id)
    (loan,) = lead.funded_loans()
    assert (loan.application_id, loan.amount, loan.term_months, loan.missed) == ("A1", funded.amount, 24, 0)

    # the stored state says the currency (a reader in another currency is not misled)
    stored = next(s for s in engine.leads.recorder.select_events(lead_id) if s.topic.endswith("LoanFunded"))
    assert json.loads(StoredStateCompressor().decompress(stored.state))["amount"] == {
        "_type_": "money",
        "_data_": {"amount": "80000.00", "currency": "HKD"},
    }
    # and so does the outbound event
    note = next(n for n in engine.leads.recorder.select_notifications(1, 100) if n.topic.endswith("LoanFunded"))
    _, wire = wire_event(engine.leads, note)
    assert wire.data["amount"] == {"amount": "80000.00", "currency": "HKD"}


def test_a_loan_funded_with_an_amount_that_is_not_a_number_is_refused_and_nothing_is_recorded(
    make_engine: MakeEngine,
) -> None:
    engine = make_engine()
    ref = young_pro(2)
    lead_id = engine.leads.capture_leads([ref])[0].lead_id
    assert lead_id is not None
    at = START + timedelta(days=1)
    engine.leads.record_lifecycle([lifecycle("application_submitted", ref, at, application_id="A2")])
    before = engine.leads.get_lead(lead_id).version
    (bad,) = engine.leads.record_lifecycle([lifecycle("loan_funded", ref, at, application_id="A2", amount="lots")])
    assert bad.error and "amount" in bad.error and "'lots'" in bad.error
    (none,) = engine.leads.record_lifecycle([lifecycle("loan_funded", ref, at, application_id="A2", amount="0")])
    assert none.error and "above 0" in none.error
    assert engine.leads.get_lead(lead_id).version == before
