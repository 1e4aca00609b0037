"""The whole loop — capture, segment, enrol, send, wait, follow up, exit, report — on SQLite
files and on PostgreSQL (the `store` fixture runs each test on both)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from engine.adapters.clock import VirtualClock
from engine.application.leads.timeline import lead_timeline
from engine.application.reports import funnel_report
from tests.conftest import START, MakeEngine
from tests.helpers import count_calls, emails, lifecycle, senior, sms_lines, young_pro


def test_young_professional_gets_welcome_then_follow_ups_then_completes(
    store: str, make_engine: MakeEngine, clock: VirtualClock, tmp_path: Path
) -> None:
    engine = make_engine()
    [outcome] = engine.leads.capture_leads([young_pro()])
    engine.run()
    outbox = tmp_path / "outbox"
    assert [s["text"][:30] for s in sms_lines(outbox)] == ["Huoke Lending: Hi Alex! Apply "]
    assert len(emails(outbox)) == 1

    engine.run(until=clock.now() + timedelta(days=2, hours=23))
    assert len(sms_lines(outbox)) == 1  # the wait is 3 days
    engine.run(until=clock.now() + timedelta(days=30))
    assert len(sms_lines(outbox)) == 2 and len(emails(outbox)) == 2

    doc = lead_timeline(engine, outcome.lead_id)  # type: ignore[arg-type]
    assert doc["enrolments"] == [{"journey_id": "young-professionals", "version": 1, "status": "exited: completed"}]
    whats = [t["what"] for t in doc["timeline"]]
    assert "stage new → contacted" in whats
    reasons = [t["why"] for t in doc["timeline"] if t["event"] == "Enrolment.BranchTaken"]
    # No credit model is registered: the band branch takes its default (the quick application).
    assert reasons == ["case 'default' because credit_band=None", "case 'default' because stage=contacted"]
    requested = [t["why"] for t in doc["timeline"] if t["event"] == "Enrolment.MessageRequested"]
    assert requested[0] == (
        "journey 'young-professionals' v1 step 'welcome_sms' "
        "(split 'lift_holdout' assigned arm 'journey' (bucket 7814))"
    )
    assert "after waiting at 'wait_3d'" not in requested[2] and "branch 'engaged_yet'" in requested[2]

    report = funnel_report(engine)
    sent = {(m["step"], m["channel"]): m["sent"] for m in report["messages"]}
    assert sent == {
        ("welcome_sms", "sms"): 1,
        ("welcome_email", "email"): 1,
        ("reminder_sms", "sms"): 1,
        ("last_call", "email"): 1,
    }
    assert report["funnel"][1] == {
        "stage": "contacted",
        "total": 1,
        "rate": 1.0,
        "by_audience": {"young_professional": 1, "sme": 0, "senior": 0, "general": 0},
    }


def test_lead_leaves_journey_when_it_applies(
    store: str, make_engine: MakeEngine, clock: VirtualClock, tmp_path: Path
) -> None:
    engine = make_engine()
    lead = young_pro()
    engine.leads.capture_leads([lead])
    engine.run()
    [out] = engine.leads.record_lifecycle(
        [
            lifecycle(
                "application_submitted",
                lead,
                clock.now() + timedelta(days=1),
                application_id="A1",
                loan_type="consumer",
                amount="80000",
            )
        ]
    )
    assert out.changed and not out.error
    engine.run(until=clock.now() + timedelta(days=30))
    texts = [s["text"] for s in sms_lines(tmp_path / "outbox")]
    assert len(texts) == 2 and "we have your loan application" in texts[1]  # no reminder, an acknowledgement
    doc = lead_timeline(engine, out.lead_id)  # type: ignore[arg-type]
    statuses = {e["journey_id"]: e["status"] for e in doc["enrolments"]}
    assert statuses["young-professionals"] == "exited: goal_reached"
    assert doc["lead"]["stage"] == "applied"
    assert engine.index.pending_count() == 0
    # No approval came within five days: the application follow-up handed it to a loan officer;
    # nobody worked it within the queue's day, so it went on to the team leads (overdue there too,
    # by the clock: team leads escalate nowhere, so no second event).
    [task] = engine.index.tasks()
    assert (task["step"], task["queue"], task["escalations"]) == ("stalled_call", "team_leads", 1)


def test_withdrawn_consent_skips_the_follow_up_with_a_reason(
    store: str, make_engine: MakeEngine, clock: VirtualClock, tmp_path: Path
) -> None:
    engine = make_engine()
    lead = senior(email=None)
    [outcome] = engine.leads.capture_leads([lead])
    engine.run()
    assert len(sms_lines(tmp_path / "outbox")) == 1
    engine.leads.record_lifecycle(
        [lifecycle("consent_withdrawn", lead, clock.now() + timedelta(days=1), channel="sms", reason="replied TD")]
    )
    engine.run(until=clock.now() + timedelta(days=30))
    assert len(sms_lines(tmp_path / "outbox")) == 1
    doc = lead_timeline(engine, outcome.lead_id)  # type: ignore[arg-type]
    skipped = [t for t in doc["timeline"] if t["event"] == "Delivery.Skipped"]
    assert [(s["what"], s["why"]) for s in skipped] == [
        ("sms at reminder of seniors-advisor not sent", "consent withdrawn")
    ]
    assert not [t for t in doc["timeline"] if t["event"] == "Delivery.Dispatching"]  # bookkeeping, not a fact
    assert {m["step"]: m["skipped"] for m in funnel_report(engine)["messages"]}["reminder"] == 1


def test_reimporting_the_same_lead_never_duplicates(store: str, make_engine: MakeEngine) -> None:
    engine = make_engine()
    first = engine.leads.capture_leads([young_pro(1)])[0]
    again = engine.leads.capture_leads([young_pro(1)])[0]
    assert (again.lead_id, again.created, again.changed) == (first.lead_id, False, False)
    # Same phone from another source (a partner) is the same person: updated, not duplicated.
    partner_copy = young_pro(
        1, source={"channel": "car_dealer", "external_id": "D-77", "partner": "BYD"}, profile={"city": "Shenzhen"}
    )
    moved = engine.leads.capture_leads([partner_copy])[0]
    assert (moved.lead_id, moved.created, moved.changed) == (first.lead_id, False, True)
    engine.run()
    assert funnel_report(engine)["leads"] == 1


def test_rebuilt_projections_match(store: str, make_engine: MakeEngine, clock: VirtualClock) -> None:
    engine = make_engine()
    engine.leads.capture_leads(
        [young_pro(n) for n in range(1, 6)] + [senior(n, f"s{n}@example.com") for n in range(1, 4)]
    )
    engine.run(until=clock.now() + timedelta(days=20))
    before = funnel_report(engine)
    timers = engine.index.pending_count()
    engine.funnel.reset()
    engine.index.reset()
    assert funnel_report(engine)["leads"] == 0
    engine.refresh_views()
    assert funnel_report(engine) == before
    assert engine.index.pending_count() == timers


def test_views_on_one_log_share_its_reads_and_a_rebuilt_view_catches_up_past_the_others(
    make_engine: MakeEngine, clock: VirtualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The views behind on a log are caught up with one read of each page and one decoding of
    each event (issue 27); a view rebuilt from nothing reads from the start while a view already
    at the end gets nothing twice."""
    from engine.application import projecting
    from engine.eventstore import saving

    engine = make_engine()
    engine.leads.capture_leads([young_pro(n) for n in range(1, 6)])
    engine.run(until=clock.now() + timedelta(days=3))
    before, timers = funnel_report(engine), engine.index.pending_count()
    engine.funnel.reset()
    engine.index.reset()
    reads = count_calls(monkeypatch, engine.journeys.recorder, "select_notifications")
    decoded: list[int] = []
    real_decode = saving.decode_page

    def decode(mapper: Any, notes: Any, personal: bool = True, recent: Any = None) -> list[Any]:
        if mapper is engine.journeys.mapper:
            decoded.extend(n.id for n in notes)
        return real_decode(mapper, notes, personal, recent)

    monkeypatch.setattr(projecting, "decode_page", decode)
    engine.refresh_views()  # the index and the funnel both follow the journeys log
    assert funnel_report(engine) == before and engine.index.pending_count() == timers
    assert len(reads) == 2  # one page, then the end: once for both views
    assert decoded and len(decoded) == len(set(decoded))  # each event decoded once for both
    index_batches = count_calls(monkeypatch, engine.index, "apply_batch")
    engine.funnel.reset()
    engine.refresh_views()
    assert funnel_report(engine) == before
    assert engine.index.pending_count() == timers and index_batches == []  # the index was at the end


def test_bad_lifecycle_fact_is_reported_and_the_rest_kept(
    store: str, make_engine: MakeEngine, clock: VirtualClock
) -> None:
    engine = make_engine()
    lead = young_pro()
    engine.leads.capture_leads([lead])
    outcomes = engine.leads.record_lifecycle(
        [
            lifecycle("application_approved", lead, clock.now(), application_id="NOPE", amount="1"),
            lifecycle("stage_changed", lead, clock.now(), stage="engaged"),
        ]
    )
    assert "no application 'NOPE'" in outcomes[0].error
    assert outcomes[1].changed
    assert engine.leads.get_lead(UUID(str(outcomes[1].lead_id))).stage.value == "engaged"


def test_a_funded_borrower_gets_a_satisfaction_check_a_month_later_or_a_call_after_a_missed_payment(
    store: str, make_engine: MakeEngine, clock: VirtualClock, tmp_path: Path
) -> None:
    engine = make_engine()
    happy, late = young_pro(1), young_pro(2)
    _, late_out = engine.leads.capture_leads([happy, late])
    engine.run()
    t0 = clock.now()
    funded = [
        lifecycle(kind, lead, t0 + timedelta(hours=1), application_id=f"A{n}", loan_type="consumer", amount="80000")
        for n, lead in enumerate((happy, late), 1)
        for kind in ("application_submitted", "application_approved", "loan_funded")
    ]
    engine.leads.record_lifecycle(funded)
    engine.run(until=t0 + timedelta(days=10))
    engine.leads.record_lifecycle(
        [lifecycle("repayment_missed", late, t0 + timedelta(days=12), application_id="A2", days_past_due=3)]
    )
    engine.run(until=t0 + timedelta(days=32))
    checks = [s for s in sms_lines(tmp_path / "outbox") if "How did we do?" in s["text"]]
    assert [c["to"] for c in checks] == [happy.contact["phone"]]  # one check, to the borrower who paid
    engine.refresh_views()
    calls = [t for t in engine.index.tasks(include_done=True) if t["journey_id"] == "after-funding"]
    assert [(t["step"], t["lead_id"]) for t in calls] == [("missed_call", str(late_out.lead_id))]


def test_outbox_files_carry_the_send_time_by_the_engines_clock(
    make_engine: MakeEngine, clock: VirtualClock, tmp_path: Path
) -> None:
    """On a virtual clock the outbox says when each message left in the simulation (the e-mail's
    Date header, the SMS line's ``at``), not when the file was written."""
    from email import message_from_bytes, policy
    from email.utils import parsedate_to_datetime

    engine = make_engine()
    engine.leads.capture_leads([young_pro(1)])
    engine.run(until=clock.now() + timedelta(days=4))
    [first, *_] = sms_lines(tmp_path / "outbox")
    sent = datetime.fromisoformat(first["at"])
    assert START <= sent <= clock.now()
    for path in emails(tmp_path / "outbox"):
        date = parsedate_to_datetime(str(message_from_bytes(path.read_bytes(), policy=policy.default)["Date"]))
        assert START <= date <= clock.now(), path


def test_the_journeys_read_lead_events_with_their_personal_fields_shut(
    store: str, make_engine: MakeEngine, clock: VirtualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The journeys take a lead event's triggers, times and ids from the event and the person's
    facts from the lead: the event's sealed fields stay shut (no key opened for them), and a
    capture, its first segments and an application still enrol, welcome and end as before."""
    engine = make_engine()
    lead = young_pro()
    [captured] = engine.leads.capture_leads([lead])
    opened = count_calls(monkeypatch, engine.leads.mapper, "to_domain_event")
    engine.journeys.process_lead_events(engine.leads, engine.parts)
    engine.leads.record_lifecycle(
        [
            lifecycle(
                "application_submitted", lead, clock.now(), application_id="A1", loan_type="consumer", amount="80000"
            )
        ]
    )
    engine.journeys.process_lead_events(engine.leads, engine.parts)
    assert opened == []
    engine.run(until=clock.now() + timedelta(days=2))
    doc = lead_timeline(engine, captured.lead_id)  # type: ignore[arg-type]
    entered = {e["journey_id"]: e["status"] for e in doc["enrolments"]}
    assert entered["young-professionals"] == "exited: goal_reached"
