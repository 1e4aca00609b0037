"""The pure journey interpreter: one small function per step kind, deciding from
(definition, enrolment context, lead facts, now)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from engine.domain.journeys import interpreter
from engine.domain.journeys.decisions import (
    Branch,
    Context,
    EndWait,
    Exit,
    GoalReached,
    Observed,
    Reach,
    Send,
    SkipSend,
    Split,
    Task,
    Update,
    Wait,
)
from engine.domain.journeys.journey import Journey
from engine.domain.journeys.parsing import parse_journey

NOW = datetime(2026, 3, 2, 9, tzinfo=UTC)
SHANGHAI = ZoneInfo("Asia/Shanghai")


def journey(**overrides: Any) -> Journey:
    data: dict[str, Any] = {
        "id": "j",
        "entry": {"on": "lead_captured", "when": {"field": "audience", "eq": "sme"}},
        "goals": ["applied", {"stage": "funded", "within": "30d"}],
        "exit_when": {"field": "stage", "eq": "lost"},
        "steps": [
            {"id": "hello", "send": {"channel": "email", "template": "t1"}, "next": "pause"},
            {"id": "pause", "wait": "2d", "next": "check"},
            {"id": "check", "branch": {"on": "tier", "cases": [{"when": "prime", "next": "vip"}], "default": "done"}},
            {"id": "vip", "send": {"channel": "sms", "template": "t2"}},
            {"id": "done", "exit": "completed"},
        ],
    }
    data.update(overrides)
    return parse_journey(data, "test.yaml")


def ctx(facts: dict[str, Any] | None = None, **kw: Any) -> Context:
    values: dict[str, Any] = {
        "lead_id": "L1",
        "journey_id": "j",
        "facts": facts or {"stage": "new"},
        "now": NOW,
        "tz": SHANGHAI,
        "entered_at": NOW,
    }
    values.update(kw)
    return Context(**values)


def test_start_sends_then_waits_with_due_time() -> None:
    assert interpreter.start(journey(), ctx()) == [
        Reach("hello"),
        Send("hello", "email", "t1"),
        Reach("pause"),
        Wait("pause", NOW + timedelta(days=2)),
    ]


def test_resume_takes_branch_and_records_deciding_value() -> None:
    decisions = interpreter.resume(journey(), "pause", ctx({"tier": "prime", "stage": "new"}))
    assert decisions[:3] == [EndWait("pause"), Reach("check"), Branch("check", "vip", "prime", {"tier": "prime"})]
    assert decisions[-1] == Exit("completed", "end of journey")


def test_branch_default_when_no_case_matches_or_fact_missing() -> None:
    assert Branch("check", "done", "default", {"tier": "other"}) in interpreter.resume(
        journey(), "pause", ctx({"tier": "other"})
    )
    assert Branch("check", "done", "default", {"tier": None}) in interpreter.resume(journey(), "pause", ctx({}))


@pytest.mark.parametrize(
    ("facts", "entered", "expected"),
    [
        ({"stage": "applied"}, NOW, [GoalReached("applied", True), Exit("goal_reached", "stage applied")]),
        (
            {"stage": "funded"},
            NOW - timedelta(days=10),
            [GoalReached("funded", True), Exit("goal_reached", "stage funded")],
        ),
        (
            {"stage": "funded"},
            NOW - timedelta(days=40),
            [GoalReached("funded", False), Exit("goal_reached", "stage funded")],
        ),
        ({"stage": "lost"}, NOW, [Exit("exit_criteria", "exit_when matched")]),
        ({"stage": "engaged"}, NOW, []),
    ],
)
def test_goals_count_their_window_and_exit_wherever_the_lead_is(
    facts: dict[str, Any], entered: datetime, expected: list[Any]
) -> None:
    assert interpreter.goal_or_exit(journey(), facts, entered, NOW) == expected


@pytest.mark.parametrize(
    ("entry", "trigger", "facts", "accepted", "why"),
    [
        ({"on": "lead_captured"}, "lead_captured", {"stage": "new"}, True, "entered on lead captured"),
        (
            {"on": "lead_captured", "when": {"field": "audience", "eq": "sme"}},
            "lead_captured",
            {"audience": "senior"},
            False,
            "entry filter did not match",
        ),
        (
            {"on": "stage_reached", "stage": "engaged"},
            "stage:engaged",
            {"stage": "engaged"},
            True,
            "entered on stage engaged",
        ),
        (
            {"on": "segment_entered", "segment": "high_dti"},
            "segment:high_dti",
            {"stage": "new"},
            True,
            "entered on segment high dti",
        ),
        (
            {"on": "lifecycle_event", "event": "loan_funded", "key": True},
            "event:loan_funded",
            {"stage": "contacted"},
            True,
            "entered on event loan funded",
        ),
        (
            {"on": "lifecycle_event", "event": "loan_funded"},
            "event:application_submitted",
            {},
            False,
            "not an entry trigger",
        ),
        ({"on": "lead_captured"}, "lead_captured", {"stage": "applied"}, False, "already meets exit: stage applied"),
        (
            {"on": "lead_captured", "requires": ["loan_amount"]},
            "lead_captured",
            {"stage": "new"},
            False,
            "missing required fields: loan_amount",
        ),
    ],
)
def test_entry_verdicts_carry_reasons(
    entry: dict[str, Any], trigger: str, facts: dict[str, Any], accepted: bool, why: str
) -> None:
    verdict = interpreter.check_entry(journey(entry=entry), trigger, facts)
    assert (verdict.accepted, verdict.reason) == (accepted, why)


def one_step(step: dict[str, Any], *extra: dict[str, Any]) -> Journey:
    return journey(steps=[step, *extra, {"id": "end", "exit": "completed"}])


def test_wait_until_a_date() -> None:
    j = one_step({"id": "w", "wait": {"until": "2026-04-01T09:00:00+08:00"}, "next": "end"})
    assert interpreter.start(j, ctx())[-1] == Wait("w", datetime(2026, 4, 1, 1, tzinfo=UTC))


def test_wait_until_past_date_continues_at_once() -> None:
    j = one_step({"id": "w", "wait": {"until": "2026-01-01T00:00:00+00:00"}, "next": "end"})
    assert interpreter.start(j, ctx())[-3:] == [
        EndWait("w", "already due"),
        Reach("end"),
        Exit("completed", "reached exit step 'end'", "end"),
    ]


def test_wait_until_a_date_field_plus_calendar_offset() -> None:
    j = journey(
        entry={"on": "lead_captured", "requires": ["last_funded_at"]},
        steps=[
            {"id": "w", "wait": {"until_field": "last_funded_at", "offset": "3y"}, "next": "end"},
            {"id": "end", "exit": "completed"},
        ],
    )
    funded = datetime(2024, 2, 29, 10, tzinfo=UTC)
    assert interpreter.start(j, ctx({"last_funded_at": funded}))[-1] == Wait("w", datetime(2027, 2, 28, 10, tzinfo=UTC))


def test_wait_for_a_local_time_on_allowed_weekdays_in_the_leads_zone() -> None:
    j = one_step({"id": "w", "wait": {"at": "09:30", "weekdays": ["mon", "tue", "wed", "thu", "fri"]}, "next": "end"})
    friday_evening = datetime(2026, 3, 6, 20, 0, tzinfo=SHANGHAI)
    decisions = interpreter.start(j, ctx(now=friday_evening.astimezone(UTC)))
    assert decisions[-1] == Wait("w", datetime(2026, 3, 9, 9, 30, tzinfo=SHANGHAI))  # Monday
    ny = ZoneInfo("America/New_York")
    same_moment_in_new_york = interpreter.start(j, ctx(now=friday_evening.astimezone(UTC), tz=ny))
    assert same_moment_in_new_york[-1] == Wait("w", datetime(2026, 3, 6, 9, 30, tzinfo=ny))  # 07:00 there
    # Across the DST change (8 March 2026): Monday 09:30 is EDT, UTC-4.
    saturday = datetime(2026, 3, 7, 20, 0, tzinfo=ny).astimezone(UTC)
    due = interpreter.start(j, ctx(now=saturday, tz=ny))[-1]
    assert isinstance(due, Wait) and due.due_at.astimezone(UTC) == datetime(2026, 3, 9, 13, 30, tzinfo=UTC)


WAIT_FOR = {
    "id": "w",
    "wait_for": {"event": "application_submitted", "same_key": True, "timeout": "7d"},
    "next": "thanks",
    "on_timeout": "nudge",
}
THANKS = {"id": "thanks", "send": {"channel": "sms", "template": "thanks"}, "next": "end"}
NUDGE = {"id": "nudge", "send": {"channel": "sms", "template": "nudge"}, "next": "end"}


def test_wait_for_event_waits_with_timeout_then_takes_the_event_branch() -> None:
    j = one_step(WAIT_FOR, THANKS, NUDGE)
    assert interpreter.start(j, ctx(entry_key="A1"))[-1] == Wait("w", NOW + timedelta(days=7), "event")
    later = NOW + timedelta(days=2)
    other_key = interpreter.on_event(j, "w", Observed("application_submitted", "A2", later), ctx(entry_key="A1"))
    assert other_key == []
    decisions = interpreter.on_event(j, "w", Observed("application_submitted", "A1", later), ctx(entry_key="A1"))
    assert decisions[:3] == [EndWait("w", "event"), Reach("thanks"), Send("thanks", "sms", "thanks")]


def test_wait_for_event_times_out() -> None:
    decisions = interpreter.resume(one_step(WAIT_FOR, THANKS, NUDGE), "w", ctx(entry_key="A1"))
    assert decisions[:3] == [EndWait("w", "timeout"), Reach("nudge"), Send("nudge", "sms", "nudge")]


def test_event_that_arrived_after_entry_but_before_the_wait_counts() -> None:
    early = Observed("application_submitted", "A1", NOW + timedelta(hours=1))
    before_entry = Observed("application_submitted", "A1", NOW - timedelta(hours=1))
    j = one_step(WAIT_FOR, THANKS, NUDGE)
    counted = interpreter.start(j, ctx(entry_key="A1", observed=(early,), now=NOW + timedelta(hours=2)))
    assert EndWait("w", "event") in counted and Send("thanks", "sms", "thanks") in counted
    ignored = interpreter.start(j, ctx(entry_key="A1", observed=(before_entry,)))
    assert ignored[-1] == Wait("w", NOW + timedelta(days=7), "event")


SPLIT = {
    "id": "ab",
    "split": {
        "salt": "spring",
        "arms": [
            {"label": "A", "percent": 45, "next": "end"},
            {"label": "B", "percent": 45, "next": "end"},
            {"label": "holdout", "percent": 10, "holdout": True},
        ],
    },
}


def test_split_is_deterministic_and_proportional() -> None:
    j = one_step(SPLIT)
    arms = Counter()
    for n in range(10_000):
        first = interpreter.start(j, ctx(lead_id=f"lead-{n}"))
        assert first == interpreter.start(j, ctx(lead_id=f"lead-{n}"))  # same lead, same arm
        arms[next(d for d in first if isinstance(d, Split)).arm] += 1
    assert abs(arms["A"] - 4500) < 250 and abs(arms["B"] - 4500) < 250 and abs(arms["holdout"] - 1000) < 150


def test_holdout_arm_exits_without_messages() -> None:
    j = one_step(SPLIT)
    for n in range(200):
        decisions = interpreter.start(j, ctx(lead_id=f"lead-{n}"))
        split = next(d for d in decisions if isinstance(d, Split))
        if split.arm == "holdout":
            assert decisions[-1].reason == "holdout"  # type: ignore[union-attr]
            return
    pytest.fail("no lead fell in the holdout arm")


def test_task_and_update_steps() -> None:
    j = one_step(
        {
            "id": "call",
            "task": {"kind": "call", "queue": "advisors", "note": "plain words", "due_in": "1d"},
            "next": "mark",
        },
        {"id": "mark", "update": {"stage": "engaged", "tag": "advisor-call"}, "next": "end"},
    )
    decisions = interpreter.start(j, ctx())
    assert Task("call", "call", "advisors", "plain words", NOW + timedelta(days=1)) in decisions
    assert Update("mark", "engaged", "advisor-call") in decisions


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("skip", SkipSend("s", "stale: fell due while the journey was paused or no worker ran")),
        ("send", Send("s", "sms", "t")),
    ],
)
def test_stale_send_policy(policy: str, expected: Any) -> None:
    j = one_step(
        {"id": "w", "wait": "1d", "next": "s"},
        {"id": "s", "send": {"channel": "sms", "template": "t"}, "stale": policy, "next": "end"},
    )
    assert expected in interpreter.resume(j, "w", ctx(stale=True))


def test_stale_send_rescheduled_is_spread_and_then_sent() -> None:
    j = one_step(
        {"id": "w", "wait": "1d", "next": "s"},
        {"id": "s", "send": {"channel": "sms", "template": "t"}, "stale": "reschedule", "next": "end"},
    )
    decisions = interpreter.resume(j, "w", ctx(stale=True))
    wait = decisions[-1]
    assert isinstance(wait, Wait) and wait.step == "s" and NOW <= wait.due_at < NOW + timedelta(days=1)
    assert Send("s", "sms", "t") in interpreter.resume(j, "s", ctx(now=wait.due_at))


def test_field_branch_with_numeric_operator() -> None:
    j = journey(
        steps=[
            {
                "id": "size",
                "branch": {
                    "on": "field",
                    "field": "loan_amount",
                    "cases": [{"when": {"gte": 1000000}, "next": "big"}],
                    "default": "small",
                },
            },
            {"id": "big", "exit": "big"},
            {"id": "small", "exit": "small"},
        ]
    )
    assert interpreter.start(j, ctx({"loan_amount": Decimal("2000000")}))[-1] == Exit(
        "big", "reached exit step 'big'", "big"
    )
    assert interpreter.start(j, ctx({"loan_amount": Decimal("5000")}))[-1] == Exit(
        "small", "reached exit step 'small'", "small"
    )


# ---- the whole entry decision and the reaction to new facts, as pure verdicts ---------------


@pytest.mark.parametrize(
    ("status", "admission", "entries", "verdict", "why"),
    [
        ("live", (True, ""), None, interpreter.Entry.ACCEPTED, "entered on lead captured"),
        ("paused", (True, ""), None, interpreter.Entry.REFUSED, "journey is paused"),
        ("live", (False, "still in this journey"), None, interpreter.Entry.REFUSED, "still in this journey"),
        ("paused", (False, "still in this journey"), None, interpreter.Entry.REFUSED, "journey is paused"),
    ],
)
def test_decide_entry_checks_terms_then_status_then_history(
    status: str, admission: tuple[bool, str], entries: int | None, verdict: interpreter.Entry, why: str
) -> None:
    decided = interpreter.decide_entry(journey(), "lead_captured", {"audience": "sme"}, status, admission, entries)
    assert (decided.entry, decided.reason) == (verdict, why)


def test_decide_entry_counts_the_cap_last_and_ignores_other_triggers() -> None:
    capped = journey(entry={"on": "lead_captured", "cap": 2})
    full = interpreter.decide_entry(capped, "lead_captured", {"stage": "new"}, "live", (True, ""), 2)
    assert (full.entry, full.reason) == (interpreter.Entry.REFUSED, "entry cap of 2 reached")
    room = interpreter.decide_entry(capped, "lead_captured", {"stage": "new"}, "live", (True, ""), 1)
    assert room.accepted
    other = interpreter.decide_entry(capped, "stage:applied", {"stage": "new"}, "paused", (False, "x"), 9)
    assert other.entry is interpreter.Entry.NOT_TRIGGERED


def test_react_ends_on_a_goal_before_looking_at_the_event() -> None:
    j = one_step(WAIT_FOR, THANKS, NUDGE)
    event = Observed("application_submitted", "A1", NOW)
    reacted = interpreter.react(j, "w", ctx({"stage": "applied"}, entry_key="A1"), event)
    assert reacted.reaction is interpreter.Reaction.ENDED
    assert reacted.decisions == [GoalReached("applied", True), Exit("goal_reached", "stage applied")]


def test_react_resumes_a_waiting_enrolment_or_remembers_the_event_for_a_later_wait() -> None:
    j = one_step(WAIT_FOR, THANKS, NUDGE)
    event = Observed("application_submitted", "A1", NOW)
    resumed = interpreter.react(j, "w", ctx(entry_key="A1"), event)
    assert resumed.reaction is interpreter.Reaction.RESUMED
    assert resumed.decisions[0] == EndWait("w", "event")
    not_waiting = interpreter.react(j, None, ctx(entry_key="A1"), event)
    assert (not_waiting.reaction, not_waiting.decisions) == (interpreter.Reaction.OBSERVED, [])
    unrelated = interpreter.react(j, "w", ctx(entry_key="A1"), Observed("loan_funded", "A1", NOW))
    assert (unrelated.reaction, unrelated.decisions) == (interpreter.Reaction.UNCHANGED, [])
    assert interpreter.react(j, "w", ctx(entry_key="A1")).reaction is interpreter.Reaction.UNCHANGED


def test_on_timer_ends_on_an_exit_met_meanwhile_else_resumes() -> None:
    assert interpreter.on_timer(journey(), "pause", ctx({"stage": "lost"})) == [
        Exit("exit_criteria", "exit_when matched")
    ]
    assert interpreter.on_timer(journey(), "pause", ctx({"stage": "new"}))[0] == EndWait("pause")


def test_a_journey_for_a_product_does_not_enrol_a_lead_no_product_of_that_kind_fits() -> None:
    consumer = journey(entry={"on": "lead_captured"}, product="consumer")
    no_fit = {"stage": "new", "loan_type": "consumer", "product_fit": "no_fit"}
    refused = interpreter.check_entry(consumer, "lead_captured", no_fit)
    assert (refused.entry, refused.reason) == (
        interpreter.Entry.REFUSED,
        "no consumer product fits this lead (product matcher)",
    )
    assert interpreter.check_entry(consumer, "lead_captured", {**no_fit, "product_fit": "fit"}).accepted
    assert interpreter.check_entry(consumer, "lead_captured", {**no_fit, "loan_type": "auto"}).accepted
    assert interpreter.check_entry(journey(entry={"on": "lead_captured"}), "lead_captured", no_fit).accepted
