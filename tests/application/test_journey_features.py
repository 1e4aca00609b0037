"""Each journey capability through the real engine (SQLite files, virtual clock)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from engine.adapters.clock import VirtualClock
from engine.adapters.yaml_files import load_yaml, strip_lines
from engine.application.engine import Engine
from engine.application.journeys.publishing import MigrationPlan, change_status, publish_journey
from engine.application.leads.commands import CaptureLead
from engine.application.leads.timeline import lead_timeline
from engine.domain.journeys.parsing import parse_journey
from tests.conftest import MakeEngine
from tests.helpers import journeys_folder, lifecycle, sms_lines, young_pro


def engine_with(make_engine: MakeEngine, tmp_path: Path, **files: str) -> Engine:
    return make_engine(settings={"journeys_dir": journeys_folder(tmp_path, **files)})


def timeline(engine: Engine, lead_id: Any) -> list[tuple[str, str]]:
    engine.refresh_views()
    return [(t["what"], t["why"]) for t in lead_timeline(engine, lead_id)["timeline"]]


KEYED = """
    id: application-follow-up
    locales: [zh-CN, en]
    vars: {apply_url: "https://lender.example/apply", hotline: 400-800-8888}
    entry: {on: lifecycle_event, event: application_submitted, key: true}
    goals: [funded]
    steps:
      - id: settle
        wait: 1d
        next: await_approval
      - id: await_approval
        wait_for: {event: application_approved, same_key: true, timeout: 5d}
        next: congratulate
        on_timeout: officer_call
      - id: congratulate
        send: {channel: sms, template: yp_reminder}
        next: done
      - id: officer_call
        task: {kind: call, queue: loan_officers, note: Application has stalled, due_in: 1d}
        next: done
      - id: done
        exit: completed
"""


def test_one_run_per_application_with_keyed_wait_for_event(
    make_engine: MakeEngine, clock: VirtualClock, tmp_path: Path
) -> None:
    engine = engine_with(make_engine, tmp_path, keyed=KEYED)
    lead = young_pro(consents={"sms": True})
    [out] = engine.leads.capture_leads([lead])
    t0 = clock.now()
    engine.leads.record_lifecycle(
        [
            lifecycle("application_submitted", lead, t0, application_id="A1", loan_type="consumer", amount="1"),
            lifecycle("application_submitted", lead, t0, application_id="A2", loan_type="auto", amount="1"),
        ]
    )
    engine.run()
    # A1 is approved 12 hours in: before its enrolment reaches the wait_for step. It must count.
    engine.leads.record_lifecycle(
        [lifecycle("application_approved", lead, t0 + timedelta(hours=12), application_id="A1", amount="1")]
    )
    engine.run(until=t0 + timedelta(days=10))
    engine.refresh_views()
    rows = {r["status"] for r in engine.index.enrolments_of(out.lead_id)}  # type: ignore[arg-type]
    assert rows == {"exited: completed"}
    reminders = [s for s in sms_lines(tmp_path / "outbox") if "few taps" in s["text"]]
    assert len(reminders) == 1  # the congratulation for A1 only
    tasks = engine.index.tasks("loan_officers")
    assert len(tasks) == 1 and tasks[0]["note"] == "Application has stalled"
    whats = timeline(engine, out.lead_id)
    assert ("wait at await_approval ended", "event") in whats
    assert ("wait at await_approval ended", "timeout") in whats
    assert ("noted application_approved A1", "for a later wait_for step") in whats


REENTRY = """
    id: decline-care
    locales: [zh-CN, en]
    vars: {apply_url: "https://lender.example/apply", hotline: 400-800-8888}
    entry: {on: lifecycle_event, event: application_declined, reentry: after_exit, cooldown: 10d}
    steps:
      - id: note
        send: {channel: sms, template: yp_reminder}
        next: done
      - id: done
        exit: completed
"""


def test_reentry_after_exit_respects_the_cool_down(
    make_engine: MakeEngine, clock: VirtualClock, tmp_path: Path
) -> None:
    engine = engine_with(make_engine, tmp_path, care=REENTRY)
    lead = young_pro(consents={"sms": True})
    [out] = engine.leads.capture_leads([lead])
    t0 = clock.now()

    def decline(app: str, at: Any) -> None:
        engine.leads.record_lifecycle(
            [
                lifecycle("application_submitted", lead, at, application_id=app, loan_type="consumer", amount="1"),
                lifecycle("application_declined", lead, at, application_id=app, reason="DTI"),
            ]
        )
        engine.run(until=at)

    decline("A1", t0)
    decline("A2", t0 + timedelta(days=3))
    decline("A3", t0 + timedelta(days=12))
    refusals = [why for what, why in timeline(engine, out.lead_id) if what.startswith("not entered into decline-care")]
    assert len(refusals) == 1 and refusals[0].startswith("cool-down after leaving until")
    engine.refresh_views()
    assert len(engine.index.enrolments_of(out.lead_id)) == 2  # type: ignore[arg-type]


CAPPED = """
    id: capped
    locales: [zh-CN, en]
    vars: {apply_url: "https://lender.example/apply", hotline: 400-800-8888}
    entry: {on: lead_captured, cap: 2}
    steps:
      - id: done
        exit: completed
"""


def test_entry_cap_refuses_with_a_reason(make_engine: MakeEngine, tmp_path: Path) -> None:
    engine = engine_with(make_engine, tmp_path, capped=CAPPED)
    outs = engine.leads.capture_leads([young_pro(n) for n in range(1, 4)])
    engine.run()
    assert ("not entered into capped v1", "entry cap of 2 reached") in timeline(engine, outs[2].lead_id)
    assert engine.journeys.publication("capped").entries == 2  # type: ignore[union-attr]


SEGMENT = """
    id: debt-advice
    locales: [zh-CN, en]
    vars: {apply_url: "https://lender.example/apply", hotline: 400-800-8888}
    entry: {on: segment_entered, segment: high_dti}
    steps:
      - id: tag
        update: {stage: engaged, tag: debt-advice}
        next: done
      - id: done
        exit: completed
"""


def test_segment_entered_trigger_and_update_step(make_engine: MakeEngine, tmp_path: Path) -> None:
    engine = engine_with(make_engine, tmp_path, debt=SEGMENT)
    [out] = engine.leads.capture_leads([young_pro()])
    engine.run()
    engine.leads.capture_leads([young_pro(profile={"monthly_income": "25000", "monthly_debt": "15000"})])
    engine.run()
    lead = engine.leads.get_lead(out.lead_id)  # type: ignore[arg-type]
    assert lead.stage.value == "engaged" and lead.tags == {"debt-advice"}
    assert ("stage contacted → engaged", "journey step 'tag'") in timeline(engine, out.lead_id) or (
        "stage new → engaged",
        "journey step 'tag'",
    ) in timeline(engine, out.lead_id)


PAUSABLE = """
    id: pausable
    locales: [zh-CN, en]
    vars: {apply_url: "https://lender.example/apply", hotline: 400-800-8888}
    entry: {on: lead_captured}
    steps:
      - id: first
        wait: 1d
        next: skipped_if_stale
      - id: skipped_if_stale
        send: {channel: sms, template: yp_welcome}
        stale: skip
        next: second
      - id: second
        send: {channel: sms, template: yp_reminder}
        stale: send
        next: done
      - id: done
        exit: completed
"""


def test_pause_holds_timers_and_resume_applies_the_stale_policy(
    make_engine: MakeEngine, clock: VirtualClock, tmp_path: Path
) -> None:
    engine = engine_with(make_engine, tmp_path, pausable=PAUSABLE)
    outs = engine.leads.capture_leads([young_pro(n, consents={"sms": True}) for n in range(1, 4)])
    engine.run()
    t0 = clock.now()
    change_status(engine, "pausable", "pause", "test", "copy review")
    engine.leads.capture_leads([young_pro(9)])
    engine.run(until=t0 + timedelta(days=3))
    assert sms_lines(tmp_path / "outbox") == []  # nothing fired while paused
    change_status(engine, "pausable", "resume", "test")
    engine.run(until=t0 + timedelta(days=4))
    texts = [s["text"] for s in sms_lines(tmp_path / "outbox")]
    assert len(texts) == 3 and all("few taps" in t for t in texts)  # stale: skip / send, never a flood
    whats = timeline(engine, outs[0].lead_id)
    assert (
        "message at skipped_if_stale not sent",
        "stale: fell due while the journey was paused or no worker ran",
    ) in whats
    refused = timeline(engine, engine.leads.find_lead(_ref(9)))
    assert ("not entered into pausable v1", "journey is paused") in refused


def _ref(n: int) -> Any:
    from engine.application.leads.commands import LeadRef

    return LeadRef(source_channel="web_form", external_id=f"W{n}")


V1 = """
    id: versioned
    locales: [zh-CN, en]
    vars: {apply_url: "https://lender.example/apply", hotline: 400-800-8888}
    entry: {on: lead_captured}
    steps:
      - id: hello
        send: {channel: sms, template: yp_welcome}
        next: wait_a
      - id: wait_a
        wait: 3d
        next: old_follow_up
      - id: old_follow_up
        send: {channel: sms, template: yp_reminder}
        next: done
      - id: done
        exit: completed
"""

V2 = """
    id: versioned
    locales: [zh-CN, en]
    vars: {apply_url: "https://lender.example/apply", hotline: 400-800-8888}
    entry: {on: lead_captured}
    steps:
      - id: hello
        send: {channel: sms, template: yp_welcome}
        next: wait_b
      - id: wait_b
        wait: 5d
        next: call
      - id: call
        task: {kind: call, queue: advisors, note: New follow-up, due_in: 1d}
        next: done
      - id: done
        exit: completed
"""


def publish_file(engine: Engine, path: Path, **kwargs: Any) -> Any:
    raw = load_yaml(path)
    return publish_journey(engine, parse_journey(raw, str(path)), strip_lines(raw), "tester", **kwargs)


@pytest.mark.parametrize("with_plan", [False, True])
def test_new_version_keeps_in_flight_enrolments_unless_a_plan_moves_them(
    with_plan: bool, make_engine: MakeEngine, clock: VirtualClock, tmp_path: Path
) -> None:
    engine = engine_with(make_engine, tmp_path, versioned=V1)
    engine.leads.capture_leads([young_pro(n, consents={"sms": True}) for n in range(1, 5)])
    engine.run(until=clock.now() + timedelta(hours=1))
    path = journeys_folder(tmp_path, versioned=V2) / "versioned.yaml"
    plan = MigrationPlan.from_dict({"steps": {"wait_a": "wait_b", "hello": "hello"}}) if with_plan else None
    dry = publish_file(engine, path, plan=plan, dry_run=True)
    assert dry.dry_run and dry.version == 2
    if with_plan:
        assert dry.as_dict()["moves"] == [{"from_version": 1, "from_step": "wait_a", "to": "wait_b", "enrolments": 4}]
        assert dry.as_dict()["would_receive_again"] == 0
    assert engine.journeys.publication("versioned").latest == 1  # type: ignore[union-attr]  # dry run
    report = publish_file(engine, path, plan=plan, summary="advisor call instead of SMS")
    assert (report.version, report.changed) == (2, True)
    engine.leads.capture_leads([young_pro(9, consents={"sms": True})])  # enters v2
    engine.run(until=clock.now() + timedelta(days=10))
    reminders = [s for s in sms_lines(tmp_path / "outbox") if "few taps" in s["text"]]
    tasks = engine.index.tasks("advisors")
    assert (len(reminders), len(tasks)) == ((0, 5) if with_plan else (4, 1))


def test_republishing_unchanged_content_is_a_no_op(make_engine: MakeEngine, tmp_path: Path) -> None:
    engine = engine_with(make_engine, tmp_path, versioned=V1)
    report = publish_file(engine, tmp_path / "journeys" / "versioned.yaml")
    assert (report.changed, report.version) == (False, 1)


def test_archiving_ends_active_enrolments(make_engine: MakeEngine, tmp_path: Path) -> None:
    engine = engine_with(make_engine, tmp_path, versioned=V1)
    [out] = engine.leads.capture_leads([young_pro(consents={"sms": True})])
    engine.run()
    change_status(engine, "versioned", "archive", "tester", "product withdrawn")
    engine.refresh_views()
    assert engine.index.enrolments_of(out.lead_id)[0]["status"] == "exited: journey_archived"  # type: ignore[arg-type]
    assert engine.index.pending_count() == 0


SPLIT = """
    id: ab
    locales: [zh-CN, en]
    vars: {apply_url: "https://lender.example/apply", hotline: 400-800-8888}
    entry: {on: lead_captured}
    goals: [{stage: applied, within: 14d}]
    steps:
      - id: subject_test
        split:
          salt: spring-2026
          arms:
            - {label: A, percent: 45, next: a}
            - {label: B, percent: 45, next: b}
            - {label: control, percent: 10, holdout: true}
      - id: a
        send: {channel: sms, template: yp_welcome}
        next: wait
      - id: b
        send: {channel: sms, template: yp_reminder}
        next: wait
      - id: wait
        wait: 30d
        next: done
      - id: done
        exit: completed
"""


def test_split_assignments_are_recorded_and_survive_a_rebuild(
    make_engine: MakeEngine, clock: VirtualClock, tmp_path: Path
) -> None:
    engine = engine_with(make_engine, tmp_path, ab=SPLIT)
    leads: list[CaptureLead] = [young_pro(n, consents={"sms": True}) for n in range(1, 301)]
    engine.leads.capture_leads(leads)
    engine.run()
    engine.leads.record_lifecycle(
        [
            lifecycle(
                "application_submitted",
                lead,
                clock.now() + timedelta(days=d),
                application_id=f"A{n}",
                loan_type="consumer",
                amount="1",
            )
            for n, (lead, d) in enumerate(zip(leads[:20], [2, 20] * 10, strict=True))
        ]
    )
    engine.run(until=clock.now() + timedelta(days=40))
    engine.refresh_views()
    outcomes = {(r["kind"], r["label"]): r["n"] for r in engine.index.outcomes("ab")}
    arms = {k[1]: n for k, n in outcomes.items() if k[0] == "split"}
    assert sum(arms.values()) == 300 and 20 <= arms["subject_test: control"] <= 45
    assert outcomes[("exit", "holdout")] == arms["subject_test: control"]
    assert outcomes.get(("goal", "applied"), 0) + outcomes.get(("goal", "applied (late)"), 0) <= 20
    assert outcomes.get(("goal", "applied (late)"), 0) >= 1
    engine.index.reset()
    engine.refresh_views()
    rebuilt = {(r["kind"], r["label"]): r["n"] for r in engine.index.outcomes("ab")}
    assert rebuilt == outcomes


FIT = """
    id: offer-by-fit
    locales: [zh-CN, en]
    entry: {on: lead_captured}
    steps:
      - id: fit
        branch:
          on: field
          field: product_fit
          cases:
            - {when: fit, next: offer, label: a product fits}
          default: advice
      - id: offer
        update: {tag: offer-ready}
        next: done
      - id: advice
        task: {kind: call, queue: debt_advisors, note: No product fits; offer advice, due_in: 1d}
        next: done
      - id: done
        exit: completed
"""


def test_products_are_matched_at_capture_and_journeys_branch_on_fit(make_engine: MakeEngine, tmp_path: Path) -> None:
    folder = journeys_folder(tmp_path, config=("segments.yaml", "products.yaml"), fit=FIT)
    engine = make_engine(settings={"journeys_dir": folder})
    fits = young_pro(
        1,
        interest={"loan_type": "consumer", "amount": "50000", "term_months": 12},
        profile={
            "birth_year": 1996,
            "employment_type": "salaried",
            "employer_kind": "large_private",
            "monthly_income": "20000",
            "monthly_debt": "2000",
        },
    )
    stretched = young_pro(
        2,
        interest={"loan_type": "consumer", "amount": "50000", "term_months": 12},
        profile={
            "birth_year": 1996,
            "employment_type": "salaried",
            "employer_kind": "large_private",
            "monthly_income": "20000",
            "monthly_debt": "9000",
        },
    )
    a, b = engine.leads.capture_leads([fits, stretched])
    engine.run()
    lead = engine.leads.get_lead(a.lead_id)  # type: ignore[arg-type]
    assert lead.offer is not None and (lead.offer.product, lead.offer.apr) == ("quick-consumer", "0.0720")
    assert lead.tags == {"offer-ready"}
    assert [t["note"] for t in engine.index.tasks("debt_advisors")] == ["No product fits; offer advice"]
    whats = [(t["what"], t["why"]) for t in lead_timeline(engine, b.lead_id)["timeline"]]  # type: ignore[arg-type]
    assert (
        "no product fits",
        "quick-consumer: DTI with this loan 67% > 55%; consumer-instalment: DTI with this loan 67% > 55%",
    ) in whats
