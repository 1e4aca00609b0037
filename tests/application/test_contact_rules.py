"""Contact windows in the lead's time zone (DST included) and frequency caps with deferral."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from engine.adapters.clock import VirtualClock
from engine.application.leads.timeline import lead_timeline
from tests.builders import done, journey, send, wait
from tests.conftest import MakeEngine
from tests.helpers import journeys_folder, sms_lines, young_pro

NEW_YORK = ZoneInfo("America/New_York")

ONE_SMS = journey("one-sms", send("hello", "sms", "yp_welcome"), done())


def three_sms(when_capped: str) -> str:
    """Three marketing SMS an hour apart: the third meets the 2-in-7-days cap."""
    return journey(
        "three-sms",
        send("first", "sms", "yp_welcome"),
        wait("gap", "1h"),
        send("second", "sms", "yp_reminder"),
        wait("gap2", "1h"),
        send("third", "sms", "yp_welcome", when_capped=when_capped),
        done(),
    )


def new_yorker(n: int = 1) -> dict[str, object]:
    return {
        "contact": {
            "name": f"Ann Lee{n}",
            "phone": f"+1212555{n:04d}",
            "email": None,
            "language": "en",
            "timezone": "America/New_York",
            "country": "US",
        },
        "consents": {"sms": True},
    }


def sms_times(tmp_path: Path, engine: object) -> list[datetime]:
    e = engine  # the Sent events carry the moment each SMS left
    out = []
    for item in sms_lines(tmp_path / "outbox"):
        delivery = e.deliveries.get_delivery(__import__("uuid").UUID(item["send_id"]))  # type: ignore[attr-defined]
        out.append(next(ev.at for ev in e.deliveries.events.get(delivery.id) if type(ev).__name__ == "Sent"))  # type: ignore[attr-defined]
    return out


def test_sms_at_night_in_new_york_waits_for_8am_there_across_the_dst_change(
    make_engine: MakeEngine, tmp_path: Path
) -> None:
    saturday_11pm = datetime(2026, 3, 7, 23, 0, tzinfo=NEW_YORK)  # EST; clocks go forward at 2am Sunday
    clock = VirtualClock(saturday_11pm.astimezone(UTC))
    engine = make_engine(clock=clock, settings={"journeys_dir": journeys_folder(tmp_path, one=ONE_SMS)})
    [out] = engine.leads.capture_leads([young_pro(1, captured_at=clock.now(), **new_yorker())])
    engine.run()
    assert sms_lines(tmp_path / "outbox") == []
    engine.run(until=clock.now() + timedelta(days=1))
    [sent_at] = sms_times(tmp_path, engine)
    assert sent_at == datetime(2026, 3, 8, 8, 0, tzinfo=NEW_YORK)  # 08:00 EDT = 12:00 UTC
    assert sent_at.astimezone(UTC).hour == 12
    whats = [(t["what"], t["why"]) for t in lead_timeline(engine, out.lead_id)["timeline"]]  # type: ignore[arg-type]
    assert any(
        w.startswith("sms at hello of one-sms held until") and "08:00-21:00 America/New_York" in y for w, y in whats
    )


def test_unknown_time_zone_gets_the_most_restrictive_window(make_engine: MakeEngine, tmp_path: Path) -> None:
    eight_pm_shanghai = datetime(2026, 3, 2, 12, 30, tzinfo=UTC)  # 20:30 in the lender's zone
    clock = VirtualClock(eight_pm_shanghai)
    engine = make_engine(clock=clock, settings={"journeys_dir": journeys_folder(tmp_path, one=ONE_SMS)})
    engine.leads.capture_leads([young_pro(1, captured_at=clock.now(), consents={"sms": True})])
    engine.run(until=clock.now() + timedelta(days=1))
    [sent_at] = sms_times(tmp_path, engine)
    assert sent_at == datetime(2026, 3, 3, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


def test_third_marketing_sms_in_a_week_is_deferred_by_the_cap(
    make_engine: MakeEngine, clock: VirtualClock, tmp_path: Path
) -> None:
    engine = make_engine(settings={"journeys_dir": journeys_folder(tmp_path, three=three_sms("defer"))})
    engine.leads.capture_leads([young_pro(1, captured_at=clock.now(), consents={"sms": True})])
    engine.run(until=clock.now() + timedelta(days=3))
    assert len(sms_lines(tmp_path / "outbox")) == 2
    engine.run(until=clock.now() + timedelta(days=8))
    times = sms_times(tmp_path, engine)
    assert len(times) == 3 and times[2] == times[0] + timedelta(days=7)


def test_capped_sms_can_be_skipped_with_a_reason(make_engine: MakeEngine, clock: VirtualClock, tmp_path: Path) -> None:
    engine = make_engine(settings={"journeys_dir": journeys_folder(tmp_path, three=three_sms("skip"))})
    [out] = engine.leads.capture_leads([young_pro(1, captured_at=clock.now(), consents={"sms": True})])
    engine.run(until=clock.now() + timedelta(days=10))
    assert len(sms_lines(tmp_path / "outbox")) == 2
    whys = [t["why"] for t in lead_timeline(engine, out.lead_id)["timeline"] if t["event"] == "Delivery.Skipped"]  # type: ignore[arg-type]
    assert whys == ["frequency cap: at most 2 marketing sms per 7d"]


STALE = """
    id: stale
    locales: [zh-CN, en]
    vars: {apply_url: "https://lender.example/apply", hotline: 400-800-8888}
    entry: {on: lead_captured}
    steps:
      - id: gap
        wait: 1d
        next: reminder
      - id: reminder
        send: {channel: sms, template: yp_reminder}
        stale: skip
        next: done
      - id: done
        exit: completed
"""


def test_a_follow_up_firing_long_after_it_fell_due_follows_the_stale_policy(
    make_engine: MakeEngine, clock: VirtualClock, tmp_path: Path
) -> None:
    engine = make_engine(settings={"journeys_dir": journeys_folder(tmp_path, stale=STALE)})
    [out] = engine.leads.capture_leads([young_pro(1, captured_at=clock.now(), consents={"sms": True})])
    assert out.lead_id is not None
    engine.run()
    clock.advance_to(clock.now() + timedelta(days=4))  # no worker ran for four days
    engine.run()
    assert sms_lines(tmp_path / "outbox") == []
    whys = [
        t["why"] for t in lead_timeline(engine, out.lead_id)["timeline"] if t["event"] == "Enrolment.MessageSkipped"
    ]  # type: ignore[arg-type]
    assert whys == ["stale: fell due while the journey was paused or no worker ran"]


BURST = """
    id: burst
    locales: [zh-CN, en]
    vars: {apply_url: "https://lender.example/apply", hotline: 400-800-8888}
    entry: {on: lead_captured}
    steps:
      - id: first
        send: {channel: sms, template: yp_welcome}
        next: second
      - id: second
        send: {channel: sms, template: yp_reminder}
        next: third
      - id: third
        send: {channel: sms, template: yp_welcome}
        next: done
      - id: done
        exit: completed
"""


def test_a_capped_message_in_the_same_pass_waits_for_the_cap_instead_of_being_dropped(
    make_engine: MakeEngine, clock: VirtualClock, tmp_path: Path
) -> None:
    engine = make_engine(settings={"journeys_dir": journeys_folder(tmp_path, burst=BURST)})
    engine.leads.capture_leads([young_pro(1, captured_at=clock.now(), consents={"sms": True})])
    engine.run()
    assert len(sms_lines(tmp_path / "outbox")) == 2
    engine.run(until=clock.now() + timedelta(days=8))
    times = sms_times(tmp_path, engine)
    assert len(times) == 3 and times[2] == times[0] + timedelta(days=7)


def test_without_a_policy_file_sms_keep_quiet_hours_in_the_country_of_the_phone_number(
    make_engine: MakeEngine, tmp_path: Path
) -> None:
    """No contact_policy.yaml and no country captured: the phone number says China, and the
    built-in windows keep a marketing SMS captured at 01:53 Shanghai until 09:00 there."""
    shanghai = ZoneInfo("Asia/Shanghai")
    night = datetime(2026, 3, 3, 1, 53, tzinfo=shanghai)
    clock = VirtualClock(night.astimezone(UTC))
    folder = journeys_folder(tmp_path, config=("segments.yaml",), one=ONE_SMS)
    assert not (folder / "config" / "contact_policy.yaml").exists()
    engine = make_engine(clock=clock, settings={"journeys_dir": folder})
    contact = {
        "name": "Li Lei",
        "phone": "+8613800138111",
        "email": None,
        "language": "en",
        "timezone": "Asia/Shanghai",
    }
    engine.leads.capture_leads([young_pro(1, contact=contact, consents={"sms": True}, captured_at=clock.now())])
    engine.run(until=clock.now() + timedelta(hours=12))
    [sent_at] = sms_times(tmp_path, engine)
    assert sent_at.astimezone(shanghai) == datetime(2026, 3, 3, 9, 0, tzinfo=shanghai)


def test_two_journeys_marketing_to_one_lead_are_spaced_a_day_apart_by_priority(
    make_engine: MakeEngine, clock: VirtualClock, tmp_path: Path
) -> None:
    """Two marketing journeys both welcome a new lead: the higher-priority one goes now, the other
    waits a day (contact policy spacing) with the reason; it went in the same minute before."""
    first = journey("first", send("hello", "email", "yp_quick_apply"), done(), priority=80)
    second = journey("second", send("hello", "email", "yp_quick_apply"), done(), priority=20)
    folder = journeys_folder(tmp_path, config=("segments.yaml", "contact_policy.yaml"), a=second, b=first)
    engine = make_engine(settings={"journeys_dir": folder})
    [out] = engine.leads.capture_leads([young_pro(1, captured_at=clock.now(), consents={"email": True})])
    engine.run(until=clock.now() + timedelta(hours=2))
    timeline = lead_timeline(engine, out.lead_id)["timeline"]  # type: ignore[arg-type]
    sent = [t["why"] for t in timeline if t["event"] == "Delivery.Sent"]
    assert sent == ["step hello of first"]
    held = [t["why"] for t in timeline if t["event"] == "Delivery.Deferred"]
    assert len(held) == 1 and held[0].startswith("spacing: first sent this lead marketing at")
    engine.run(until=clock.now() + timedelta(days=2))
    sent = [t["what"] for t in lead_timeline(engine, out.lead_id)["timeline"] if t["event"] == "Delivery.Sent"]  # type: ignore[arg-type]
    assert len(sent) == 2


SMS_THEN_EMAIL = journey(
    "sms-then-email", send("hello", "sms", "yp_welcome"), send("details", "email", "yp_quick_apply"), done()
)
EMAIL_THEN_SMS = journey(
    "email-then-sms", send("details", "email", "yp_quick_apply"), send("hello", "sms", "yp_welcome"), done()
)


def _held_and_sent(engine: object, lead_id: object) -> tuple[list[str], list[tuple[str, str]]]:
    timeline = lead_timeline(engine, lead_id)["timeline"]  # type: ignore[arg-type]
    held = [t["what"] for t in timeline if t["event"] == "Delivery.Deferred"]
    sent = [(t["why"], t["at"]) for t in timeline if t["event"] == "Delivery.Sent"]
    return held, sent


def test_a_message_behind_one_skipped_in_the_same_pass_goes_at_once(
    make_engine: MakeEngine, clock: VirtualClock, tmp_path: Path
) -> None:
    """Each lead lacks one channel's consent: that message is skipped in the pass that takes both
    requests up, and the other, even the e-mail behind its SMS, has nothing to wait for: it goes
    in that pass. It waited two minutes for the skipped one before (issue 27: a step of the run
    for each such lead)."""
    engine = make_engine(settings={"journeys_dir": journeys_folder(tmp_path, one=SMS_THEN_EMAIL)})
    now = clock.now()
    leads = [young_pro(n, captured_at=now, consents={"email" if n % 2 else "sms": True}) for n in range(1, 9)]
    out = engine.leads.capture_leads(leads)
    engine.run(until=now + timedelta(hours=1))
    for o in out:
        held, sent = _held_and_sent(engine, o.lead_id)
        assert held == [] and len(sent) == 1 and sent[0][1] == now.isoformat()


def _night_in_new_york(make_engine: MakeEngine, tmp_path: Path, one: str) -> tuple[Any, list[Any], datetime]:
    """Eight New Yorkers captured at 11pm there (SMS and e-mail consent) into journey ``one``,
    run for a day: (engine, capture outcomes, 08:00 the next morning there, in UTC)."""
    eleven_pm = datetime(2026, 3, 10, 23, 0, tzinfo=NEW_YORK)
    clock = VirtualClock(eleven_pm.astimezone(UTC))
    engine = make_engine(clock=clock, settings={"journeys_dir": journeys_folder(tmp_path, one=one)})
    leads = []
    for n in range(1, 9):
        lead = {**new_yorker(n), "consents": {"sms": True, "email": True}}
        lead["contact"] = {**lead["contact"], "email": f"ann{n}@example.com"}  # type: ignore[dict-item]
        leads.append(young_pro(n, captured_at=clock.now(), **lead))
    out = engine.leads.capture_leads(leads)
    engine.run(until=clock.now() + timedelta(days=1))
    return engine, out, datetime(2026, 3, 11, 8, 0, tzinfo=NEW_YORK).astimezone(UTC)


def test_a_message_behind_one_held_for_the_night_is_held_once_until_just_after_it(
    make_engine: MakeEngine, tmp_path: Path
) -> None:
    """New York at 11pm: each lead's SMS is held until 08:00 there. The e-mail of the step after
    it, requested at the same moment, is behind it for every lead (the steps' order, not the
    send ids': issue 27), held once, until two minutes after it (it was held two minutes first,
    then again until 08:02), and leaves then."""
    engine, out, eight = _night_in_new_york(make_engine, tmp_path, SMS_THEN_EMAIL)
    for o in out:
        held, sent = _held_and_sent(engine, o.lead_id)
        assert sorted(sent) == [
            ("step details of sms-then-email", (eight + timedelta(minutes=2)).isoformat()),
            ("step hello of sms-then-email", eight.isoformat()),
        ]
        assert len(held) == 2 and held[1].startswith("email at details of sms-then-email held until 2026-03-11 20:02")


def test_messages_of_one_moment_go_in_their_steps_order(make_engine: MakeEngine, tmp_path: Path) -> None:
    """The same two messages, the e-mail's step first: every lead's e-mail goes at 11pm, at once,
    and its SMS at 08:00 (behind nothing unsettled by then)."""
    engine, out, eight = _night_in_new_york(make_engine, tmp_path, EMAIL_THEN_SMS)
    eleven_pm = (eight - timedelta(hours=9)).isoformat()
    for o in out:
        held, sent = _held_and_sent(engine, o.lead_id)
        assert sorted(sent) == [
            ("step details of email-then-sms", eleven_pm),
            ("step hello of email-then-sms", eight.isoformat()),
        ]
        assert len(held) == 1 and held[0].startswith("sms at hello of email-then-sms held until")
