"""Screening in the flow: scores recorded once and branched on, life-event segments entered on
the right day by the daily review, flags that keep leads out of offers, and old stored events."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from pathlib import Path
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from engine.application.engine import Engine
from engine.application.leads.timeline import lead_timeline
from engine.domain.leads.facts import lead_facts
from engine.domain.leads.lead import Lead, told
from engine.domain.screening.scoring import Bin, Characteristic, Scorecard
from tests.conftest import START, MakeEngine
from tests.helpers import lifecycle, young_pro

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def register_scorecard(engine: Engine) -> None:
    """A hand-made two-characteristic scorecard: low DTI and a good income score 650 (band B),
    a stretched DTI and a low income 500 (band E)."""
    card = Scorecard(
        (
            Characteristic(
                "dti",
                "numeric",
                (Bin("<= 0.3", 330, 0.5, upper=0.3), Bin("> 0.3", 250, -0.5)),
                Bin("missing", 300, 0.0),
            ),
            Characteristic(
                "monthly_income",
                "numeric",
                (Bin("<= 10000", 250, -0.3, upper=10000), Bin("> 10000", 320, 0.3)),
                Bin("missing", 280, 0.0),
            ),
        )
    )
    folder: Path = engine.leads.models.folder  # type: ignore[union-attr]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "credit-v1.scorecard.json"
    path.write_text(json.dumps(card.to_json()), encoding="utf-8")
    engine.leads.register_model(
        "credit",
        "test",
        features=card.features,
        kinds={"dti": "numeric", "monthly_income": "numeric"},
        metrics={},
        training={},
        reference={},
        artefact=path.name,
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
    )


def stretched(n: int) -> object:
    return young_pro(
        n, profile={"birth_year": 1996, "employment_type": "salaried", "monthly_income": "8000", "monthly_debt": "4000"}
    )


def test_leads_are_scored_once_as_captured_and_journeys_branch_on_the_band(make_engine: MakeEngine) -> None:
    engine = make_engine()
    register_scorecard(engine)
    good, weak = young_pro(1), stretched(2)
    ids = [o.lead_id for o in engine.leads.capture_leads([good, weak])]  # type: ignore[list-item]
    assert all(ids)
    scores = [engine.leads.get_lead(i).scores["credit"] for i in ids]  # type: ignore[arg-type]
    assert [(s.score, s.band, s.model_version) for s in scores] == [(620, "B", 1), (500, "E", 1)]
    assert scores[1].inputs == {"dti": 0.5, "monthly_income": 8000.0}
    assert {r["characteristic"] for r in scores[1].reasons} == {"dti", "monthly_income"}

    # Re-importing the same leads scores nothing again: same model, same inputs.
    before = engine.leads.recorder.max_notification_id()
    assert not any(o.changed for o in engine.leads.capture_leads([good, weak]))  # type: ignore[list-item]
    assert engine.leads.recorder.max_notification_id() == before

    engine.run(until=START + timedelta(hours=2))
    sent = {
        (r["step"], r["outcome"]): r["n"] for r in engine.funnel.messages() if r["journey_id"] == "young-professionals"
    }
    assert sent[("welcome_email", "sent")] == 1  # band B: the quick application
    assert sent[("budget_first", "sent")] == 1  # band E: an affordability check first
    doc = lead_timeline(engine, ids[1])  # type: ignore[arg-type]
    assert doc["lead"]["scores"]["credit"]["band"] == "E"
    assert any(item["event"] == "Lead.Scored" and "R01 dti" in item["why"] for item in doc["timeline"])


def test_replay_reads_the_recorded_score_and_never_rescores(make_engine: MakeEngine) -> None:
    engine = make_engine()
    register_scorecard(engine)
    lead_id = engine.leads.capture_leads([stretched(3)])[0].lead_id  # type: ignore[list-item]
    assert lead_id is not None
    for f in engine.leads.models.folder.iterdir():  # type: ignore[union-attr]
        f.unlink()  # the model is gone: a replay that re-scored would fail
    again = make_engine()
    lead = again.leads.get_lead(lead_id)
    assert lead.scores["credit"].band == "E" and lead.scores["credit"].score == 500


def test_a_better_lead_profile_is_rescored_in_the_same_batch_as_its_update(make_engine: MakeEngine) -> None:
    engine = make_engine()
    register_scorecard(engine)
    weak = stretched(4)
    lead_id = engine.leads.capture_leads([weak])[0].lead_id  # type: ignore[list-item]
    better = young_pro(
        4,
        profile={"birth_year": 1996, "employment_type": "salaried", "monthly_income": "30000", "monthly_debt": "1000"},
    )
    engine.leads.capture_leads([better])
    lead = engine.leads.get_lead(lead_id)  # type: ignore[arg-type]
    scored = [e for s in engine.leads.events.get(lead.id) for e in told(s) if isinstance(e, Lead.Scored)]
    assert [e.band for e in scored] == ["E", "B"]  # the first recorded with its capture
    assert lead_facts(lead, START)["credit_band"] == "B"


def _mortgage_customer(engine: Engine, funded_day: int, **funded: object) -> tuple[UUID, object]:
    cmd = young_pro(7, interest={"loan_type": "mortgage", "amount": "1500000", "term_months": "360"})
    lead_id = engine.leads.capture_leads([cmd])[0].lead_id
    at = START + timedelta(days=funded_day)
    engine.leads.record_lifecycle(
        [
            lifecycle(
                "application_submitted",
                cmd,
                at - timedelta(days=3),
                application_id="M1",
                loan_type="mortgage",
                amount="1500000",
            ),
            lifecycle("application_approved", cmd, at - timedelta(days=1), application_id="M1", amount="1500000"),
            lifecycle("loan_funded", cmd, at, application_id="M1", amount="1500000", **funded),
        ]
    )
    assert lead_id is not None
    return lead_id, cmd


def test_renovation_cross_sell_starts_on_the_day_the_mortgage_completes_a_month(make_engine: MakeEngine) -> None:
    engine = make_engine()
    engine.run(until=START)
    lead_id, _ = _mortgage_customer(engine, funded_day=5)  # funded 2026-03-07 09:00 Shanghai
    engine.run(until=START + timedelta(days=35, hours=12))  # 2026-04-06 21:00 Shanghai
    assert "renovation_cross_sell" not in engine.leads.get_lead(lead_id).segments
    engine.run(until=START + timedelta(days=36))  # 2026-04-07 09:00 Shanghai
    lead = engine.leads.get_lead(lead_id)
    assert "renovation_cross_sell" in lead.segments
    entered = [
        e
        for e in engine.leads.events.get(lead_id)
        if isinstance(e, Lead.Segmented) and "renovation_cross_sell" in e.entered
    ]
    assert len(entered) == 1
    local = entered[0].at.astimezone(engine.journeys.default_tz)
    assert (local.date().isoformat(), local.hour) == ("2026-04-07", 0)
    enrolled = [r["journey_id"] for r in engine.index.enrolments_of(lead_id)]
    assert "renovation-cross-sell" in enrolled
    assert engine.screening.segment_sizes()["renovation_cross_sell"] == 1


def test_refinance_after_six_on_time_car_payments_and_renewal_ninety_days_before_maturity(
    make_engine: MakeEngine,
) -> None:
    engine = make_engine()
    engine.run(until=START)
    car = young_pro(8, interest={"loan_type": "auto", "amount": "150000", "term_months": "36"})
    sme = young_pro(9, interest={"loan_type": "business", "amount": "800000", "term_months": "6"})
    ids = [o.lead_id for o in engine.leads.capture_leads([car, sme])]
    at = START + timedelta(days=1)
    for cmd, kind, amount, term in ((car, "auto", "150000", 36), (sme, "business", "800000", 6)):
        engine.leads.record_lifecycle(
            [
                lifecycle("application_submitted", cmd, at, application_id=f"A-{kind}", loan_type=kind, amount=amount),
                lifecycle(
                    "loan_funded",
                    cmd,
                    at + timedelta(hours=1),
                    application_id=f"A-{kind}",
                    amount=amount,
                    term_months=term,
                ),
            ]
        )
    engine.run(until=START + timedelta(days=120))
    lead = engine.leads.get_lead(ids[1])  # type: ignore[arg-type]
    facts = lead_facts(lead, START + timedelta(days=120))
    assert facts["business_days_to_maturity"] == 65  # matures 2026-09-03; now 2026-06-30
    renewal = [
        e
        for e in engine.leads.events.get(lead.id)
        if isinstance(e, Lead.Segmented) and "working_capital_renewal" in e.entered
    ]
    assert len(renewal) == 1
    days_before = facts["business_days_to_maturity"] + (START + timedelta(days=120) - renewal[0].at).days
    assert days_before == 90  # entered on the first day of the 60-90 day window
    assert "auto_refinance" not in engine.leads.get_lead(ids[0]).segments  # type: ignore[arg-type]
    engine.run(until=START + timedelta(days=186))  # six instalments due by 2026-09-03
    car_lead = engine.leads.get_lead(ids[0])  # type: ignore[arg-type]
    assert lead_facts(car_lead, START + timedelta(days=186))["auto_on_time_payments"] == 6
    assert "auto_refinance" in car_lead.segments


def test_a_missed_repayment_or_a_decline_keeps_a_lead_out_of_offers(make_engine: MakeEngine) -> None:
    engine = make_engine()
    engine.run(until=START)
    lead_id, cmd = _mortgage_customer(engine, funded_day=1)
    engine.leads.record_lifecycle(
        [lifecycle("repayment_missed", cmd, START + timedelta(days=20), application_id="M1", days_past_due=15)]  # type: ignore[arg-type]
    )
    lead = engine.leads.get_lead(lead_id)
    assert "delinquent" in lead.segments
    assert lead.offer is not None and lead.offer.product == "" and "delinquent" in lead.offer.reasons["policy"]
    matched = [e for e in engine.leads.events.get(lead_id) if isinstance(e, Lead.ProductsMatched)][-1]
    assert matched.inputs["segments"] and "monthly_income" in matched.inputs  # the inputs the decision used
    engine.run(until=START + timedelta(days=40))
    assert "renovation_cross_sell" not in engine.leads.get_lead(lead_id).segments  # arrears: no cross-sell

    other = young_pro(10)
    other_id = engine.leads.capture_leads([other])[0].lead_id
    declined_at = START + timedelta(days=41)
    engine.leads.record_lifecycle(
        [
            lifecycle(
                "application_submitted",
                other,
                declined_at - timedelta(days=1),
                application_id="C1",
                loan_type="consumer",
                amount="80000",
            ),
            lifecycle("application_declined", other, declined_at, application_id="C1", reason="DTI above policy"),
        ]
    )
    assert "recently_declined" in engine.leads.get_lead(other_id).segments  # type: ignore[arg-type]
    engine.run(until=declined_at + timedelta(days=90))
    assert "recently_declined" in engine.leads.get_lead(other_id).segments  # type: ignore[arg-type]
    engine.run(until=declined_at + timedelta(days=92))
    lead = engine.leads.get_lead(other_id)  # type: ignore[arg-type]
    assert "recently_declined" not in lead.segments  # the flag lapses after 90 days, by the daily review
    assert lead.offer is not None and lead.offer.product  # and offers resume


def test_events_stored_before_loans_had_terms_still_load(make_engine: MakeEngine) -> None:
    """Fixture: a lead's events as stored at c73a0f1 (LoanFunded v1, ProductsMatched v1)."""
    doc = json.loads((FIXTURES / "lead_v1_events.json").read_text(encoding="utf-8"))
    lead_id = UUID(doc["lead_id"])
    engine = make_engine()
    engine.leads.recorder.insert_events(
        [StoredEvent(lead_id, e["originator_version"], e["topic"], e["state"].encode()) for e in doc["events"]]
    )
    lead = engine.leads.get_lead(lead_id)
    assert lead.loans["M1" if "M1" in lead.loans else "APP-1"].loan_type == "mortgage"  # from the application
    assert lead.loans["APP-1"].term_months == 0
    assert lead.loans["APP-1"].amount is not None and lead.loans["APP-1"].amount.currency == "CNY"
    matched = [e for e in engine.leads.events.get(lead_id) if isinstance(e, Lead.ProductsMatched)]
    assert matched and matched[0].inputs == {}
    funded = next(e for e in engine.leads.events.get(lead_id) if isinstance(e, Lead.LoanFunded))
    assert (funded.loan_type, funded.term_months) == ("", 0)
    later = funded.at + timedelta(days=40)
    assert lead_facts(lead, later)["mortgage_months_on_book"] == 1
