"""The lean event log (issue 27) loses no answer ``huoke leads show`` gave: the why-trails of 60
demo leads, recorded before the log was made lean, read the same today, line by line in meaning."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from engine.adapters.clock import VirtualClock
from engine.application.delivery.base import ORDER_GAP
from engine.application.leads.timeline import lead_timeline
from engine.domain.journeys import enrolment
from engine.domain.journeys.lead_journeys import EntryRefusals, LeadJourneys, refusals_in
from tests.application.why_trails import why_trails
from tests.conftest import MakeEngine
from tests.helpers import young_pro

#: The events that name the step they belong to (an exit names its step only in words).
STEP_EVENTS = {f"Enrolment.{e.__name__}" for e in enrolment.STEP_EVENTS}

BEFORE = Path(__file__).resolve().parent.parent / "fixtures" / "why_trails_before_lean_log.json"


def _step_named(item: dict[str, Any], step: str) -> bool:
    """Whether a line of the trail names ``step`` (its what or its why)."""
    pattern = rf"(?<![\w-]){re.escape(step)}(?![\w-])"
    return bool(re.search(pattern, item["what"]) or re.search(pattern, item["why"]))


def _reached(item: dict[str, Any]) -> str:
    return str(item["what"]).removeprefix("reached step ")


def _told_by_next(trail: list[dict[str, Any]], i: int) -> bool:
    """A 'reached step X' line whose next line, at the same moment, is X's own event naming X:
    the lean log records that reach with the step's event alone."""
    reached, nxt = trail[i], (trail[i + 1] if i + 1 < len(trail) else None)
    return (
        nxt is not None
        and nxt["at"] == reached["at"]
        and nxt["source"] == "journey"
        and nxt["event"] in STEP_EVENTS
        and _step_named(_told(nxt, _reached(reached)), _reached(reached))
    )


def _told(item: dict[str, Any], step: str) -> dict[str, Any]:
    """A task line names its step now (it was the line before that did)."""
    if item["event"] == "Enrolment.TaskCreated":
        return {**item, "what": f"{item['what']} at step {step}"}
    return item


def lean(trail: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A trail from before the lean log as the lean log tells it: a step told once, and the
    journeys a lead event did not enter the lead into recorded in one event (a line each)."""
    out: list[dict[str, Any]] = []
    for i, item in enumerate(trail):
        if item["event"] == "LeadJourneys.Refused":
            out.append({**item, "event": "LeadJourneys.EntriesRefused"})
            continue
        if item["event"] == "Enrolment.StepReached":
            if not _told_by_next(trail, i):
                out.append(item)
            continue
        before = trail[i - 1] if i else None
        told_by = before is not None and before["event"] == "Enrolment.StepReached" and before["at"] == item["at"]
        out.append(_told(item, _reached(before)) if told_by and before else item)
    return out


_WAITS = "waits for the earlier message "


def _moment(item: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(item["at"])


def _as_the_timeline_lists(trail: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The timeline lists a lead's own events first, then the others, each kept in time order."""
    return sorted(trail, key=lambda line: (_moment(line), line["source"] != "lead"))


def without_needless_waits(trail: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A trail as the dispatcher tells it since it stopped waiting needlessly for the earlier
    message of a journey decided in the same pass (issue 27):

    - one held for a contact window: the message behind it is held once, straight until just
      after it (it was held for the gap first, then again until then: two lines, now one);
    - one skipped (no consent): the message behind it goes at once (it went after the gap, and
      the lead's first contact moved with it).
    """
    out = [dict(item) for item in trail]
    i = 0
    while i < len(out):
        item = out[i]
        if item["event"] != "Delivery.Deferred" or not item["why"].startswith(_WAITS):
            i += 1
            continue
        after = _moment(item) + ORDER_GAP  # how long it waited after the earlier one was due
        again = next(
            (j for j in range(i + 1, len(out)) if out[j]["event"] == "Delivery.Deferred"
             and out[j]["why"] == item["why"] and _moment(out[j]) == after),
            None,
        )  # fmt: skip
        if again is not None:  # held for the gap, then again: held once, until the second time
            item["what"] = out.pop(again)["what"]
            i += 1
            continue
        step = item["what"].split(" at ")[1].split(" of ")[0]
        sent = next(
            (j for j in range(i + 1, len(out)) if out[j]["event"] == "Delivery.Sent"
             and _moment(out[j]) == after and out[j]["why"].startswith(f"step {step} of ")),
            None,
        )  # fmt: skip
        if sent is not None:  # the earlier one was skipped: this one goes at once, in its place
            out[i] = {**out.pop(sent), "at": item["at"]}
            for line in out:
                if line["why"] == "first message sent" and _moment(line) == after:
                    line["at"] = item["at"]
        i += 1
    return _as_the_timeline_lists(out)


_HELD = re.compile(r"^(\w+) at (\S+) of (\S+) held until (\d{4}-\d\d-\d\d \d\d:\d\d) (.+)$")
_STEP_SENT = re.compile(r"^step (\S+) of (\S+)$")


class _WaitsForAnEarlierMessage(str):
    """The reason of a message held behind an earlier one, whichever message it names (the old
    trail does not tell the earlier message's send id)."""

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, str)
            and re.fullmatch(rf"{_WAITS}[0-9a-f-]{{36}} of its journey to go first", other) is not None
        )

    def __hash__(self) -> int:
        return hash(_WAITS)


def in_step_order(trail: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A trail as the dispatcher tells it since messages requested at the same moment go in their
    steps' order, not their send ids' (issue 27): a message that went at once while the message
    of a step before it in the same journey, requested at that moment, was held for a contact
    window now waits for it: held until two minutes after it leaves, and sent then (the lead's
    first contact moves to the earlier message's)."""
    out = [dict(item) for item in trail]
    moved = False
    for i, line in enumerate(out):
        sent = _STEP_SENT.match(line["why"]) if line["event"] == "Delivery.Sent" else None
        if sent is None:
            continue
        step, journey = sent[1], sent[2]
        earlier = next(
            (m for held in out[:i] if held["event"] == "Delivery.Deferred" and held["at"] == line["at"]
             and held["why"].startswith("outside contact window")
             and (m := _HELD.match(held["what"])) and m[3] == journey and m[2] != step),
            None,
        )  # fmt: skip
        if earlier is None:
            continue
        left = next(x for x in out if x["event"] == "Delivery.Sent" and x["why"] == f"step {earlier[2]} of {journey}"
                    and _moment(x) > _moment(line))  # fmt: skip
        until = datetime.strptime(earlier[4], "%Y-%m-%d %H:%M") + ORDER_GAP  # noqa: DTZ007 - the wall time shown
        out[i] = {
            "at": line["at"],
            "source": "delivery",
            "event": "Delivery.Deferred",
            "what": f"{line['what'].split()[0]} at {step} of {journey} held until {until:%Y-%m-%d %H:%M} {earlier[5]}",
            "why": _WaitsForAnEarlierMessage(_WAITS),
        }
        out.append({**line, "at": (_moment(left) + ORDER_GAP).isoformat()})
        moved = True
    if moved:
        first = min(_moment(x) for x in out if x["event"] == "Delivery.Sent")
        for line in out:
            if line["why"] == "first message sent":
                line["at"] = first.isoformat()
    return _as_the_timeline_lists(out)


def test_a_step_reached_and_told_by_its_own_event_is_one_line() -> None:
    at = "2026-03-02T01:00:00+00:00"
    trail = [
        {"at": at, "source": "journey", "event": "Enrolment.StepReached", "what": "reached step welcome", "why": ""},
        {
            "at": at,
            "source": "journey",
            "event": "Enrolment.MessageRequested",
            "what": "email message 'yp_welcome' requested",
            "why": "journey 'young-professionals' v1 step 'welcome' (first entry)",
        },
        {"at": at, "source": "journey", "event": "Enrolment.StepReached", "what": "reached step leave", "why": ""},
        {"at": at, "source": "journey", "event": "Enrolment.Exited", "what": "left journey: done", "why": "exit"},
    ]
    # The exit step has no event of its own naming it: its reach stays.
    assert lean(trail) == trail[1:]
    task = {"at": at, "source": "journey", "event": "Enrolment.TaskCreated", "what": "call task for rm", "why": "x"}
    reach = {**trail[0], "what": "reached step call"}
    assert lean([reach, task]) == [{**task, "what": "call task for rm at step call"}]


@pytest.mark.slow
def test_the_why_trails_of_demo_leads_read_the_same_as_before_the_lean_log(tmp_path: Path) -> None:
    before = json.loads(BEFORE.read_text(encoding="utf-8"))
    now = why_trails(tmp_path)
    assert list(now) == list(before)
    for ref, trail in before.items():
        assert now[ref] == in_step_order(without_needless_waits(lean(trail))), ref
    lines_before = sum(len(t) for t in before.values())
    lines_now = sum(len(t) for t in now.values())
    assert lines_now < lines_before  # the reaches told twice are told once


def test_refusals_stored_one_event_each_and_in_one_event_read_the_same(
    make_engine: MakeEngine, clock: VirtualClock
) -> None:
    """A captured lead's refusals are one event (of the lead event's own EntryRefusals); a store
    from before kept one event per refused journey in the lead's LeadJourneys, and both tell the
    same lines and counts."""
    engine = make_engine()
    [outcome] = engine.leads.capture_leads([young_pro(1)])
    assert outcome.lead_id is not None
    engine.run(until=clock.now() + timedelta(minutes=5))
    version = engine.leads.get_lead(outcome.lead_id).version
    events = engine.journeys.history_events(outcome.lead_id, version)
    batched = [e for e in events if isinstance(e, EntryRefusals.Recorded)]
    assert len(batched) == 1 and len(batched[0].refusals) >= 2  # all the journeys it did not enter
    assert [type(e).__qualname__ for e in events] == ["EntryRefusals.Recorded"]  # entries are claims
    assert list(engine.journeys.history_of(outcome.lead_id).active)  # it entered one
    # As a store before the lean log recorded it: one Refused per journey, in its LeadJourneys.
    history = LeadJourneys(lead_id=outcome.lead_id)
    history._refused(journey_id="old-journey", version=3, trigger="lead_captured", reason="old filter", at=clock.now())
    engine.journeys.save(history)
    engine.refresh_views()
    lines = [t for t in lead_timeline(engine, outcome.lead_id)["timeline"] if t["what"].startswith("not entered")]
    told = {(t["event"], t["what"], t["why"]) for t in lines}
    expected = {
        ("LeadJourneys.EntriesRefused", f"not entered into {r['journey_id']} v{r['version']}", r["reason"])
        for r in batched[0].refusals
    }
    assert told == expected | {("LeadJourneys.Refused", "not entered into old-journey v3", "old filter")}
    counts = {(o["journey_id"], o["label"]): o["n"] for o in engine.index.outcomes() if o["kind"] == "refused"}
    assert counts[("old-journey", "old filter")] == 1
    for r in batched[0].refusals:
        assert counts[(r["journey_id"], r["reason"])] >= 1


def test_an_enrolment_and_history_stored_before_the_lean_log_read_the_same(make_engine: MakeEngine) -> None:
    """Fixture from a store written before the lean log: a StepReached before each step's event,
    Exited v1 without its step, one LeadJourneys.Refused per journey. The enrolment loads to the
    same state, the journey index counts each step reached once, and the refusals read."""
    from eventsourcing.persistence import StoredEvent

    doc = json.loads((BEFORE.parent / "enrolment_before_lean_log.json").read_text(encoding="utf-8"))
    engine = make_engine()
    enrolment_id, history_id = UUID(doc["enrolment_id"]), UUID(doc["history_id"])
    stored = [(enrolment_id, e) for e in doc["events"]] + [(history_id, e) for e in doc["history_events"]]
    engine.journeys.recorder.insert_events(
        [StoredEvent(i, e["originator_version"], e["topic"], e["state"].encode()) for i, e in stored]
    )
    loaded = engine.journeys.repository.get(enrolment_id)
    assert loaded.current_step == "done" and loaded.exit_reason == "completed"
    assert loaded.visits == {"acknowledge": 1, "await_approval": 1, "stalled_call": 1, "done": 1}
    [exited] = [e for e in engine.journeys.enrolment_events(enrolment_id) if isinstance(e, enrolment.Enrolment.Exited)]
    assert exited.step is None  # v1: its StepReached came before it
    engine.refresh_views()
    reached = {o["label"]: o["n"] for o in engine.index.outcomes() if o["kind"] == "reached"}
    assert reached == {"acknowledge": 1, "await_approval": 1, "stalled_call": 1, "done": 1}
    refused = [r for e in engine.journeys.history_events(UUID(doc["lead_id"]), 0) for r in refusals_in(e)]
    assert [(r.journey_id, r.reason) for r in refused] == [
        ("seniors-advisor", "entry filter did not match"),
        ("young-professionals", "entry filter did not match"),
    ]
    # Its entries and exits, indexed once by db init, give the history a new store keeps as claims.
    old = engine.journeys.repository.get(history_id)
    assert engine.journeys.migrate_histories() == 4  # two entries, two exits
    assert engine.journeys.migrate_histories() == 0  # idempotent
    now = engine.journeys.history_of(UUID(doc["lead_id"]))
    assert (now.active, now.entries, now.last_exit) == (old.active, old.entries, old.last_exit)
