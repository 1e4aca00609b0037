"""The pure journey interpreter: (definition, state, facts, now) → decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from engine.domain import interpreter
from engine.domain.interpreter import Branch, EndWait, Exit, Reach, Send, Wait
from engine.domain.journey import Journey, parse_journey

NOW = datetime(2026, 3, 2, 9, tzinfo=UTC)


def journey(**overrides: Any) -> Journey:
    data: dict[str, Any] = {
        "id": "j",
        "entry": {"on": "lead_captured", "when": {"field": "audience", "eq": "sme"}},
        "goals": ["applied", "funded"],
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


def test_start_sends_then_waits_with_due_time() -> None:
    decisions = interpreter.start(journey(), {"stage": "new"}, NOW)
    assert decisions == [
        Reach("hello"),
        Send("hello", "email", "t1"),
        Reach("pause"),
        Wait("pause", NOW + timedelta(days=2)),
    ]


def test_resume_takes_branch_and_records_deciding_value() -> None:
    decisions = interpreter.resume(journey(), "pause", {"tier": "prime", "stage": "new"}, NOW)
    assert decisions[:3] == [EndWait("pause"), Reach("check"), Branch("check", "vip", "prime", {"tier": "prime"})]
    assert decisions[-1] == Exit("completed", "end of journey")


def test_branch_default_when_no_case_matches() -> None:
    decisions = interpreter.resume(journey(), "pause", {"tier": "near_prime"}, NOW)
    assert Branch("check", "done", "default", {"tier": "near_prime"}) in decisions
    assert decisions[-1] == Exit("completed", "reached exit step 'done'")


def test_missing_fact_takes_default_branch() -> None:
    decisions = interpreter.resume(journey(), "pause", {}, NOW)
    assert Branch("check", "done", "default", {"tier": None}) in decisions


@pytest.mark.parametrize(
    ("facts", "reason"),
    [
        ({"stage": "applied"}, "goal_reached"),
        ({"stage": "funded"}, "goal_reached"),
        ({"stage": "lost"}, "exit_criteria"),
    ],
)
def test_exit_check_ends_wherever_the_lead_is(facts: dict[str, Any], reason: str) -> None:
    ended = interpreter.exit_check(journey(), facts)
    assert ended is not None and ended.reason == reason


def test_no_exit_while_in_progress() -> None:
    assert interpreter.exit_check(journey(), {"stage": "engaged"}) is None


@pytest.mark.parametrize(
    ("trigger", "facts", "accepted", "why"),
    [
        ("lead_captured", {"audience": "sme", "stage": "new"}, True, "entered on lead captured"),
        ("lead_captured", {"audience": "senior", "stage": "new"}, False, "entry filter did not match"),
        ("stage:engaged", {"audience": "sme", "stage": "engaged"}, False, "not an entry trigger"),
        ("lead_captured", {"audience": "sme", "stage": "applied"}, False, "already meets exit: stage applied"),
    ],
)
def test_entry_verdicts_carry_reasons(trigger: str, facts: dict[str, Any], accepted: bool, why: str) -> None:
    verdict = interpreter.check_entry(journey(), trigger, facts)
    assert (verdict.accepted, verdict.reason) == (accepted, why)


def test_stage_reached_trigger() -> None:
    j = journey(entry={"on": "stage_reached", "stage": "engaged"})
    assert interpreter.check_entry(j, "stage:engaged", {"stage": "engaged"}).accepted
    assert not interpreter.check_entry(j, "lead_captured", {"stage": "new"}).accepted


def test_entry_requires_fields() -> None:
    j = journey(entry={"on": "lead_captured", "requires": ["loan_amount"]})
    verdict = interpreter.check_entry(j, "lead_captured", {"stage": "new"})
    assert verdict == interpreter.EntryVerdict(False, "missing required fields: loan_amount")


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
    from decimal import Decimal

    assert interpreter.start(j, {"loan_amount": Decimal("2000000")}, NOW)[-1].reason == "big"  # type: ignore[union-attr]
    assert interpreter.start(j, {"loan_amount": Decimal("5000")}, NOW)[-1].reason == "small"  # type: ignore[union-attr]
