"""A step's reach is recorded by the step's own event (the lean log, issue 27): the enrolment's
state, its send and task ids, and the visits erasure reads are what they were with StepReached."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from engine.domain.journeys.decisions import Decision, EndWait, Exit, Reach, Send, Task, Wait
from engine.domain.journeys.enrolment import Enrolment, send_id_for

AT = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


def _enrolment() -> Enrolment:
    return Enrolment(
        lead_id=uuid4(), journey_id="j", journey_version=1, entry_key="", entry_number=1, reason="first entry", at=AT
    )


def _names(events: Sequence[Any]) -> list[str]:
    return [type(e).__name__ for e in events]


def test_a_step_with_an_event_of_its_own_is_reached_by_that_event() -> None:
    e = _enrolment()
    e.apply(
        [Reach("welcome"), Send("welcome", "email", "t1"), Reach("pause"), Wait("pause", AT + timedelta(days=1))], AT
    )
    assert _names(e.collect_events()) == ["Started", "MessageRequested", "WaitStarted"]
    assert e.current_step == "pause" and e.visits == {"welcome": 1, "pause": 1}


def test_a_loop_counts_every_visit_and_gives_each_its_own_send_id() -> None:
    e = _enrolment()
    due = AT + timedelta(days=1)
    loop: list[Decision] = [Reach("nudge"), Send("nudge", "email", "t"), Reach("pause"), Wait("pause", due)]
    e.apply(loop, AT)
    e.apply([EndWait("pause"), *loop], due)
    sends = [x for x in e.collect_events() if isinstance(x, Enrolment.MessageRequested)]
    assert [s.send_id for s in sends] == [send_id_for(e.id, "nudge", 1), send_id_for(e.id, "nudge", 2)]
    assert e.visits == {"nudge": 2, "pause": 2}


def test_a_step_reached_again_from_itself_and_an_exit_step_keep_their_step_reached() -> None:
    e = _enrolment()
    due = AT + timedelta(hours=3)
    # A stale send rescheduled: it waits at its own step, then is reached again from there.
    e.apply([Reach("offer"), Wait("offer", due, "rescheduled")], AT)
    e.apply(
        [EndWait("offer", "rescheduled"), Reach("offer"), Send("offer", "email", "t"), Reach("done"), Exit("x", "y")],
        due,
    )
    names = _names(e.collect_events())
    assert names == ["Started", "WaitStarted", "WaitEnded", "StepReached", "MessageRequested", "StepReached", "Exited"]
    assert e.visits == {"offer": 2, "done": 1}


def test_an_enrolment_stored_with_step_reached_events_reads_the_same() -> None:
    lean = _enrolment()
    lean.apply([Reach("call"), Task("call", "call", "team", "ring", AT), Reach("wait"), Wait("wait", AT)], AT)
    events: list[Any] = list(lean.collect_events())
    # The same history as stores before the lean log wrote it: a StepReached before each step's event.
    old: list[Any] = [events[0]]
    version = 2
    reached: Any = Enrolment.StepReached
    for x in events[1:]:
        old.append(
            reached(originator_id=lean.id, originator_version=version, timestamp=x.timestamp, step=x.step, at=AT)
        )
        version += 1
        old.append(type(x)(**{**x.__dict__, "originator_version": version}))
        version += 1
    again: Enrolment | None = None
    for x in old:
        again = x.mutate(again)
    assert again is not None
    assert (again.current_step, again.visits) == (lean.current_step, lean.visits)
    assert _names(old) == ["Started", "StepReached", "TaskCreated", "StepReached", "WaitStarted"]


def test_an_exit_step_is_reached_by_its_exit() -> None:
    e = _enrolment()
    e.apply(
        [Reach("welcome"), Send("welcome", "email", "t"), Reach("done"), Exit("completed", "exit step", "done")], AT
    )
    assert _names(e.collect_events()) == ["Started", "MessageRequested", "Exited"]
    assert e.current_step == "done" and e.visits == {"welcome": 1, "done": 1} and not e.is_active


def test_a_wait_that_ends_as_planned_is_ended_by_the_next_steps_event() -> None:
    """Its time came: the next step's event arriving elsewhere ends it (no WaitEnded), with the
    state and the send's reason a WaitEnded gave; a wait ended otherwise keeps its event."""
    folded, stored_before = _enrolment(), _enrolment()
    due = AT + timedelta(days=2)
    for e in (folded, stored_before):
        e.apply([Reach("pause"), Wait("pause", due)], AT)
    folded.apply([EndWait("pause"), Reach("nudge"), Send("nudge", "email", "t")], due)
    # As stores before wrote it: WaitEnded first, then the send.
    stored_before._wait_ended(step="pause", outcome="elapsed", at=due)
    stored_before.apply([Reach("nudge"), Send("nudge", "email", "t")], due)
    events, before = folded.collect_events(), stored_before.collect_events()
    assert _names(events)[-2:] == ["WaitStarted", "MessageRequested"]
    assert _names(before)[-3:] == ["WaitStarted", "WaitEnded", "MessageRequested"]
    assert events[-1].reason == before[-1].reason  # type: ignore[attr-defined]
    assert "after waiting at 'pause': elapsed" in events[-1].reason  # type: ignore[attr-defined]
    for e in (folded, stored_before):
        assert (e.waiting_step, e.due_at, e.current_step, e.visits) == (None, None, "nudge", {"pause": 1, "nudge": 1})
    # An event that came (and a wait that ends the journey) keep their WaitEnded.
    observed = _enrolment()
    observed.apply([Reach("hold"), Wait("hold", due, "event")], AT)
    observed.apply([EndWait("hold", "event"), Reach("next"), Send("next", "sms", "t")], AT + timedelta(hours=1))
    assert _names(observed.collect_events())[-3:] == ["WaitStarted", "WaitEnded", "MessageRequested"]
    ending = _enrolment()
    ending.apply([Reach("last"), Wait("last", due)], AT)
    ending.apply([EndWait("last"), Exit("completed", "journey ended after step 'last'")], due)
    assert _names(ending.collect_events())[-2:] == ["WaitEnded", "Exited"]
