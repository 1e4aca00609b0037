"""A funding stored before its amount was required (amount "") no longer stops the views and the
referral rewards: the loan is counted, its volume unknown (0), and what follows is processed."""

from __future__ import annotations

from datetime import timedelta

from engine.adapters.clock import VirtualClock
from engine.application.analytics import attribution_report, flows_report
from engine.domain.shared.values import Stage
from tests.conftest import MakeEngine
from tests.helpers import lifecycle, young_pro


def test_a_stored_funding_without_an_amount_is_counted_and_the_views_go_on(
    make_engine: MakeEngine, clock: VirtualClock
) -> None:
    engine = make_engine()
    first, second = young_pro(1), young_pro(2)
    [out, _] = engine.leads.capture_leads([first, second])
    assert out.lead_id is not None
    engine.leads.record_lifecycle([lifecycle("application_submitted", first, clock.now(), application_id="A1",
                                             loan_type="consumer", amount="50000")])  # fmt: skip
    lead = engine.leads.get_lead(out.lead_id)
    lead._loan_funded(
        application_id="A1", amount=None, at=clock.now(), loan_type="consumer", term_months=0
    )  # as stored
    lead.advance_to(Stage.FUNDED, "loan A1 funded", clock.now())
    engine.leads.save(lead)
    later = clock.now() + timedelta(hours=1)
    engine.leads.record_lifecycle(
        [lifecycle(kind, second, later, application_id="A2", loan_type="consumer", amount="80000")
         for kind in ("application_submitted", "application_approved", "loan_funded")]
    )  # fmt: skip
    engine.run(until=later + timedelta(hours=1))  # the views and the reactors pass the old event
    engine.refresh_views()
    total = attribution_report(engine)["total"]
    assert total["funded"] == 2 and float(total["funded_volume"]) == 80000  # the first's volume is unknown
    assert flows_report(engine)["journeys"]  # reports answer
