"""Several processes, one truth: each engine here stands for a separate process on the same
store (its own caches), as `huoke serve`, an agent's `consent opt-out` and a worker are."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import StoredEvent

from engine.adapters.clock import VirtualClock
from engine.application.engine import Engine
from engine.application.leads.timeline import lead_timeline
from engine.application.reports import funnel_report
from engine.bootstrap import bootstrap
from engine.domain.delivery.delivery import Delivery
from engine.domain.shared.errors import HuokeError
from engine.eventstore.coordination import NotInitialisedError
from engine.eventstore.saving import latest_versions
from tests.conftest import ROOT, MakeEngine, base_settings
from tests.helpers import emails, lifecycle, requested_deliveries, sms_in_doubt, sms_lines, young_pro


def test_an_opt_out_by_another_process_stops_the_follow_up(
    store: str, make_engine: MakeEngine, clock: VirtualClock, tmp_path: Path
) -> None:
    worker, serve = make_engine(), make_engine()
    [outcome] = worker.leads.capture_leads([young_pro()])
    worker.run()
    assert len(emails(tmp_path / "outbox")) == 1  # the welcome; the worker has the lead cached now
    assert outcome.lead_id is not None
    serve.leads.opt_out(outcome.lead_id, "all", "unsubscribe link", "one-click unsubscribe", clock.now())
    worker.run(until=clock.now() + timedelta(days=30))
    assert len(emails(tmp_path / "outbox")) == 1  # nothing after the opt-out
    timeline = lead_timeline(worker, outcome.lead_id)["timeline"]
    assert [t["why"] for t in timeline if t["what"].endswith("not sent")] == ["consent withdrawn", "consent withdrawn"]


def test_an_opt_out_committed_just_before_the_dispatch_marker_stops_the_message(
    store: str, make_engine: MakeEngine, clock: VirtualClock, tmp_path: Path
) -> None:
    """The opt-out lands after the worker decided but before its marker: the second look
    (after the marker is committed) stops the message."""
    worker, serve = make_engine(), make_engine()
    [outcome] = worker.leads.capture_leads([young_pro()])
    assert outcome.lead_id is not None
    lead_id = outcome.lead_id
    decide = worker.deliveries.refusal
    looks: list[str] = []

    def refusal_then_opt_out(*args: Any) -> str:
        verdict = decide(*args)
        looks.append(verdict)
        if len(looks) == 1:  # another process commits an opt-out right after the first look
            serve.leads.opt_out(lead_id, "all", "unsubscribe link", "one-click unsubscribe", clock.now())
        return verdict

    worker.deliveries.refusal = refusal_then_opt_out  # type: ignore[assignment,method-assign]
    worker.run()
    assert looks[0] == "" and looks[-1] == "consent withdrawn"  # decided before, looked again after
    timeline = lead_timeline(worker, lead_id)["timeline"]
    assert [t for t in timeline if t["event"] == "Delivery.Sent"] == []
    skipped = [t["why"] for t in timeline if t["event"] == "Delivery.Skipped"]
    assert skipped == ["consent withdrawn", "consent withdrawn"]  # the welcome SMS and e-mail
    assert not (tmp_path / "outbox" / "sms.jsonl").exists() and emails(tmp_path / "outbox") == []


def test_a_goal_reached_in_another_process_stops_a_held_message(
    store: str, make_engine: MakeEngine, clock: VirtualClock, tmp_path: Path
) -> None:
    """A welcome SMS held overnight (quiet hours) is not sent once the lead has applied."""
    night = clock.now() + timedelta(hours=13)  # 22:00 in Shanghai
    clock.advance_to(night)
    worker, importer = make_engine(), make_engine()
    lead = young_pro(captured_at=night)
    [outcome] = worker.leads.capture_leads([lead])
    worker.run(until=night)
    assert outcome.lead_id is not None
    assert not (tmp_path / "outbox" / "sms.jsonl").exists()  # held until 09:00
    applied = night + timedelta(hours=1)
    importer.leads.record_lifecycle([lifecycle("application_submitted", lead, applied, application_id="A1")])
    worker.run(until=night + timedelta(hours=14))
    texts = [s["text"] for s in sms_lines(tmp_path / "outbox")]
    assert texts == [  # only the service message about the application, never the welcome push
        "Huoke Lending: Alex, we have your loan application and will let you know the decision soon. "
        "Questions: 400-800-8888. Reply STOP to opt out."
    ]
    skipped = [
        t["why"]
        for t in lead_timeline(worker, outcome.lead_id)["timeline"]
        if t["what"].startswith("sms at") and t["what"].endswith("not sent")
    ]
    assert skipped == ["lead left the journey before sending: goal_reached (stage applied)"]


def test_deliveries_move_the_lead_to_contacted_through_tracked_events(
    store: str, make_engine: MakeEngine, tmp_path: Path
) -> None:
    engine = make_engine()
    [outcome] = engine.leads.capture_leads([young_pro()])
    engine.run()
    assert outcome.lead_id is not None
    assert engine.leads.get_lead(outcome.lead_id).stage.value == "contacted"
    parts = engine.parts  # one partition on SQLite; on PostgreSQL the lead's own position
    tracked = engine.leads.recorder.max_tracking_id(
        parts.tracking_name(engine.deliveries.name, parts.of(outcome.lead_id))
    )
    assert tracked is not None and tracked > 0  # exactly once: Leads follows the Deliveries log


def test_nothing_runs_before_db_init(tmp_path: Path, clock: VirtualClock) -> None:
    with pytest.raises(NotInitialisedError, match="huoke db init"):
        bootstrap(base_settings(tmp_path), clock)


def test_a_store_an_older_huoke_made_asks_for_db_init(tmp_path: Path, clock: VirtualClock) -> None:
    """A store from before the identity index was claims must be migrated by ``db init`` first,
    and is after it."""
    import sqlite3

    from engine.bootstrap import IDENTITIES_CLAIMED, init_database

    settings = base_settings(tmp_path)
    init_database(settings)
    with sqlite3.connect(settings.data_dir / "huoke.db") as meta:  # as an older huoke left it
        meta.execute("DELETE FROM huoke_meta WHERE key = ?", (IDENTITIES_CLAIMED,))
    with pytest.raises(NotInitialisedError, match="older huoke: run `huoke db init` once"):
        bootstrap(settings, clock)
    init_database(settings)
    bootstrap(settings, clock).close()


def test_opening_the_store_publishes_nothing(tmp_path: Path, clock: VirtualClock, make_engine: MakeEngine) -> None:
    from engine.bootstrap import init_database

    settings = base_settings(tmp_path / "fresh")
    init_database(settings)
    engine: Engine = bootstrap(settings, clock)
    try:
        assert engine.journeys.live == {}
        assert all(engine.journeys.publication(j) is None for j in ("young-professionals", "seniors-advisor"))
    finally:
        engine.close()


def test_sends_stored_before_they_named_the_lead_still_count(store: str, make_engine: MakeEngine) -> None:
    """Fixture: a delivery's events as stored at 3fa2fa8 (Delivery.Sent v1, no lead_id)."""
    doc = json.loads((ROOT / "tests" / "fixtures" / "delivery_v1_events.json").read_text(encoding="utf-8"))
    engine = make_engine()
    delivery_id = UUID(doc["delivery_id"])
    engine.deliveries.recorder.insert_events(
        [StoredEvent(delivery_id, e["originator_version"], e["topic"], e["state"].encode()) for e in doc["events"]]
    )
    sent = next(e for e in engine.deliveries.events.get(delivery_id) if isinstance(e, Delivery.Sent))
    assert sent.lead_id is None and sent.recipient
    delivery = engine.deliveries.get_delivery(delivery_id)
    assert delivery is not None and delivery.outcome == "sent" and str(delivery.lead_id) == doc["lead_id"]
    # Requested v1 → v3: no position recorded (same-moment messages go by send id, as they went).
    assert delivery.request_position == 0
    engine.refresh_views()  # the schedule reads the old request too
    assert engine.schedule.open_before([(delivery_id, delivery.enrolment_id, delivery.requested_at, 0)]) == {}


def test_the_schedule_orders_unsettled_messages_of_one_moment_by_their_steps(
    make_engine: MakeEngine, clock: VirtualClock
) -> None:
    """Two messages of one enrolment requested at the same moment, the later step's with the
    smaller send id: the schedule view puts the earlier step's first, as the dispatcher does."""
    engine = make_engine()
    now, enrolment_id, lead_id = clock.now(), uuid4(), uuid4()
    small, large = sorted((uuid4(), uuid4()), key=str)

    def requested(send_id: UUID, step: str, position: int) -> Delivery:
        return Delivery(
            send_id=send_id, lead_id=lead_id, enrolment_id=enrolment_id, journey_id="j", journey_version=1,
            step=step, channel="email", template="yp_welcome", reason="test", at=now, request_position=position,
        )  # fmt: skip

    engine.deliveries.save(requested(small, "second", 5), requested(large, "first", 3))
    engine.refresh_views()
    asked = [(small, enrolment_id, now, 5), (large, enrolment_id, now, 3)]
    assert engine.schedule.open_before(asked) == {small: [(large, None)]}


def test_the_version_check_sees_committed_versions(store: str, make_engine: MakeEngine) -> None:
    engine = make_engine()
    [outcome] = engine.leads.capture_leads([young_pro()])
    assert outcome.lead_id is not None
    lead = engine.leads.get_lead(outcome.lead_id)
    assert latest_versions(engine.leads, [outcome.lead_id]) == {outcome.lead_id: lead.version}
    assert latest_versions(engine.leads, []) == {}


@pytest.mark.parametrize(("policy", "resent"), [("resend", True), ("hold", False)])
def test_a_message_in_doubt_after_a_crash_is_resent_or_held_as_configured(
    make_engine: MakeEngine, clock: VirtualClock, tmp_path: Path, policy: str, resent: bool
) -> None:
    """A crash after a message's dispatch marker and before its outcome leaves it in doubt;
    the outbox never saw it, so it is resent (same id) or, with HUOKE_IN_DOUBT=hold, held."""
    engine = make_engine(settings={"in_doubt": policy})
    [outcome] = engine.leads.capture_leads([young_pro()])
    sms = sms_in_doubt(engine, outcome.lead_id)  # type: ignore[arg-type]
    assert engine.deliveries.get_delivery(sms.id).in_doubt  # type: ignore[union-attr]
    engine.run()
    sent = [line["send_id"] for line in sms_lines(tmp_path / "outbox")]
    assert (str(sms.id) in sent) is resent
    timeline = lead_timeline(engine, outcome.lead_id)["timeline"]  # type: ignore[arg-type]
    held = [t["why"] for t in timeline if t["event"] == "Delivery.HeldForReview"]
    assert len(held) == (0 if resent else 1) and all("held for review" in why for why in held)
    if resent:
        return
    # The operator checks the provider's log: it never left. Released, it goes out once, same id.
    engine.refresh_views()
    [row] = engine.schedule.review_holds()
    assert row["send_id"] == str(sms.id) and funnel_report(engine)["messages"]
    assert engine.run().dispatch.moved == 0  # held: never resent by itself
    engine.deliveries.review(sms.id, engine.leads, "ops", "not in the provider log", left=False)
    engine.run()
    assert [line["send_id"] for line in sms_lines(tmp_path / "outbox")].count(str(sms.id)) == 1
    engine.refresh_views()
    assert engine.schedule.review_holds() == []
    counts = {(m["journey_id"], m["step"], m["outcome"]): m["n"] for m in engine.funnel.messages()}
    step = (sms.journey_id, sms.step)
    assert (counts[(*step, "held for review")], counts[(*step, "sent")]) == (0, 1)  # no longer held: sent
    with pytest.raises(HuokeError, match="is not held for review"):
        engine.deliveries.review(sms.id, engine.leads, "ops", "", left=True)


def test_a_held_message_the_log_shows_sent_is_recorded_sent_and_never_resent(
    make_engine: MakeEngine, clock: VirtualClock, tmp_path: Path
) -> None:
    engine = make_engine(settings={"in_doubt": "hold"})
    [outcome] = engine.leads.capture_leads([young_pro()])
    sms = sms_in_doubt(engine, outcome.lead_id)  # type: ignore[arg-type]
    engine.run()
    engine.deliveries.review(sms.id, engine.leads, "ops", "provider id SM123", left=True)
    engine.run(until=clock.now() + timedelta(hours=1))
    assert str(sms.id) not in [line["send_id"] for line in sms_lines(tmp_path / "outbox")]
    d = engine.deliveries.get_delivery(sms.id)
    assert d is not None and d.outcome == "sent"
    timeline = lead_timeline(engine, outcome.lead_id)["timeline"]  # type: ignore[arg-type]
    assert any("confirmed it had left" in t["what"] and t["why"] == "ops: provider id SM123" for t in timeline)


def test_a_message_that_left_just_before_a_crash_is_reconciled_with_its_recipient(
    make_engine: MakeEngine, clock: VirtualClock, tmp_path: Path
) -> None:
    """The SMS was written to the outbox, then the process died before recording it: the next
    run finds it there and records it sent, to the lead's number, without sending it again."""
    engine = make_engine()
    [outcome] = engine.leads.capture_leads([young_pro()])
    engine.journeys.process_lead_events(engine.leads, engine.parts)
    sms = next(d for d in requested_deliveries(engine) if d.channel == "sms").requested_dispatching(clock.now())
    engine.deliveries.save(sms)
    outbox = tmp_path / "outbox"
    outbox.mkdir(exist_ok=True)
    line = {"send_id": str(sms.id), "to": "+8613800130001", "text": "…", "locale": "en", "template_variant": ""}
    (outbox / "sms.jsonl").write_text(json.dumps(line) + "\n", encoding="utf-8")
    restarted = make_engine()
    report = restarted.run()
    assert report.dispatch.reconciled == 1
    assert [s["send_id"] for s in sms_lines(outbox)] == [str(sms.id)]  # not sent again
    timeline = lead_timeline(restarted, outcome.lead_id)["timeline"]  # type: ignore[arg-type]
    sent = [t["what"] for t in timeline if t["event"] == "Delivery.Sent" and t["what"].startswith("sms")]
    assert sent == ["sms sent to +8613800130001"]


def test_contact_histories_stored_before_they_named_the_journey_still_count(
    store: str, make_engine: MakeEngine
) -> None:
    """Fixture: a contact history as stored at af8b470 (Contacted v1, no journey_id), before
    contact logs were the deliveries store's claims: ``db init`` indexes it once, and the send
    it holds counts towards caps and spacing as before."""
    doc = json.loads((ROOT / "tests" / "fixtures" / "contact_history_v1_events.json").read_text(encoding="utf-8"))
    engine = make_engine()
    history_id = UUID(doc["history_id"])
    engine.deliveries.recorder.insert_events(
        [StoredEvent(history_id, e["originator_version"], e["topic"], e["state"].encode()) for e in doc["events"]]
    )
    assert engine.deliveries.migrate_contacts() == 1  # what huoke db init does once
    assert engine.deliveries.migrate_contacts() == 0  # idempotent
    history = engine.deliveries.contact_log(UUID(doc["lead_id"]))
    since = datetime(2026, 3, 1, tzinfo=UTC)
    assert history.sent_since("email", "marketing", since) == [datetime(2026, 3, 2, 1, 0, tzinfo=UTC)]
    assert history.last_from_another_journey("any", "marketing", since) == (
        "another journey",
        datetime(2026, 3, 2, 1, 0, tzinfo=UTC),
    )


def test_the_daily_review_redoes_a_batch_when_another_process_wrote_one_of_its_leads(
    store: str, make_engine: MakeEngine, clock: VirtualClock
) -> None:
    """The calendar review reads leads of every partition; one written by another process
    meanwhile (an opt-out from serve) makes the batch read again and redo, never fail."""
    worker, serve = make_engine(), make_engine()
    [outcome] = worker.leads.capture_leads([young_pro()])
    lead_id = outcome.lead_id
    assert lead_id is not None
    screen = worker.leads.screen
    calls: list[int] = []

    def screen_while_serve_writes(leads: Any, at: Any) -> None:
        calls.append(1)
        if len(calls) == 1:  # between the review's read and its save, another process writes
            serve.leads.opt_out(lead_id, "all", "unsubscribe link", "one-click", clock.now())
        for lead in leads:
            lead.tag("reviewed", "calendar review", clock.now())
        screen(leads, at)

    worker.leads.screen = screen_while_serve_writes  # type: ignore[method-assign]
    day = clock.now().date()
    assert worker.leads.review_calendar(day, [lead_id], clock.now()) == 1
    assert len(calls) == 2  # the batch was read again and redone
    lead = worker.leads.fresh_lead(lead_id)
    assert "reviewed" in lead.tags and not any(lead.consents.values())  # both changes kept
    assert worker.leads.last_reviewed_day() == day


def test_sent_is_the_same_in_both_reports_and_the_outboxes(
    make_engine: MakeEngine, clock: VirtualClock, tmp_path: Path
) -> None:
    """One truth: what `report journeys`, `report funnel` and the outboxes say was sent agree
    (the journeys report counts requested messages apart from their delivery outcomes)."""
    from engine.application.reports import journeys_report

    engine = make_engine()
    engine.leads.capture_leads([young_pro(n) for n in range(1, 6)])
    engine.run(until=clock.now() + timedelta(days=20))
    engine.refresh_views()
    journeys = journeys_report(engine)["journeys"]
    by_report: dict[str, int] = {}
    for row in journeys:
        for label, n in row["deliveries"].items():
            by_report[label] = by_report.get(label, 0) + n
    funnel: dict[str, int] = {}
    for m in funnel_report(engine)["messages"]:
        for outcome in ("sent", "skipped", "failed", "retrying"):
            key = f"{m['channel']} {outcome}"
            funnel[key] = funnel.get(key, 0) + m[outcome]
    assert {k: v for k, v in by_report.items() if k in funnel} == {k: v for k, v in funnel.items() if v}
    assert by_report.get("email sent", 0) == len(emails(tmp_path / "outbox")) > 0
    assert by_report.get("sms sent", 0) == len(sms_lines(tmp_path / "outbox")) > 0
    # The dashboard's "sent" and its daily series count the same messages.
    from engine.application.analytics import ALL_LEADS
    from engine.bootstrap.reports import dashboard_data
    from tests.conftest import settings_of

    page = dashboard_data(engine, settings_of(engine), ALL_LEADS)
    assert page["sent"]["email"] == by_report["email sent"] and page["sent"]["sms"] == by_report["sms sent"]
    assert page["daily"]["totals"]["sent"] == by_report["email sent"] + by_report["sms sent"]
