"""The demo's leads answer marketing only when it reaches them: a generated click (and what
follows from it) happens only for a lead the lender reached, so a holdout measures real lift."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from demo.data import DemoEvent, generate
from demo.runner import Responses
from engine.adapters.clock import VirtualClock
from engine.application.leads.commands import CaptureLead
from engine.domain.shared.values import Stage
from tests.conftest import MakeEngine
from tests.helpers import lifecycle, young_pro


def test_a_demo_lead_clicks_only_a_link_it_was_sent(make_engine: MakeEngine, clock: VirtualClock) -> None:
    engine = make_engine()
    reached = young_pro(1)
    unreached = young_pro(2, consents={"email": False, "sms": False})  # nothing may be sent to it
    outcomes = engine.leads.capture_leads([reached, unreached])
    engine.run(until=clock.now() + timedelta(hours=2))
    stages = [engine.leads.get_lead(o.lead_id).stage for o in outcomes if o.lead_id]
    assert stages[0] != Stage.NEW and stages[1] == Stage.NEW
    at = clock.now()

    def answer(lead: CaptureLead, unprompted: bool) -> list[tuple[Any, DemoEvent]]:
        row = {"source_channel": lead.source["channel"], "external_id": lead.source["external_id"]}
        click = lifecycle("stage_changed", lead, at, stage="engaged", reason="clicked the application link")
        applies = lifecycle("application_submitted", lead, at, application_id="A", loan_type="consumer", amount="1")
        return [(click, DemoEvent(at, row, True, False)), (applies, DemoEvent(at, row, True, unprompted))]

    responses = Responses()
    kept = responses.happening(engine, answer(reached, False) + answer(unreached, False))
    assert kept == [record for record, _ in answer(reached, False)]
    assert len(responses.unreached) == 2
    # A lead nobody reached still applies when it would have unprompted; facts that are not
    # answers to marketing (a decision, a loan) always happen.
    again = Responses()
    [(click, _), (applies, fact)] = answer(unreached, True)
    assert again.happening(engine, [(click, DemoEvent(at, fact.row, True, False)), (applies, fact)]) == [applies]
    funded = lifecycle("loan_funded", unreached, at, application_id="A", amount="1")
    assert again.happening(engine, [(funded, DemoEvent(at, fact.row))]) == [funded]


def test_the_generator_marks_clicks_and_what_follows_them_as_answers() -> None:
    from datetime import UTC, datetime

    _, events = generate(400, datetime(2026, 3, 2, tzinfo=UTC), capture_days=10, sim_days=30)
    clicks = [e for e in events if e.row.get("reason") == "clicked the application link"]
    assert clicks and all(e.response and not e.unprompted for e in clicks)
    clicked = {e.row["external_id"] for e in clicks}
    answers = [e for e in events if e.response]
    assert {e.row["external_id"] for e in answers} == clicked
    assert any(e.unprompted for e in answers) and any(not e.unprompted for e in answers if e not in clicks)
    assert all(not e.response for e in events if e.row["external_id"] not in clicked)
