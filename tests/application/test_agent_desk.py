"""The loan officers' desk through the real engine (SQLite and PostgreSQL, virtual clock): tasks
routed by licence region, loan type and language within capacity; held with the reason when
nobody can take them; escalated as events when their queue's service level runs out."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from engine.adapters.clock import VirtualClock
from engine.application.engine import Engine
from engine.application.journeys.tasks import claim_task, complete_task, reassign_task, task_documents
from engine.domain.journeys.agent_task import AgentTask
from engine.domain.journeys.agent_task import told as told_task
from engine.domain.journeys.desk import parse_desk
from engine.domain.shared.errors import HuokeError, JourneyValidationError, TaskNotYoursError
from tests.builders import done, journey
from tests.conftest import MakeEngine
from tests.helpers import count_calls, journeys_folder, young_pro

DESK = """
    queues:
      - {id: loan_officers, sla: 4h, escalate_to: team_leads}
      - {id: team_leads, sla: 1d}
    officers:
      - {id: li.na, queues: [loan_officers], regions: [Shanghai], languages: [en, zh-CN], capacity: 1}
      - {id: bob, queues: [loan_officers], regions: [Beijing], loan_types: [consumer], languages: [en], capacity: 5}
      - {id: liu.yang, queues: [team_leads], capacity: 10}
"""
CALL = journey(
    "call-them",
    {"id": "call", "task": {"kind": "call", "queue": "loan_officers", "note": "Call about the loan", "due_in": "1d"}},
    done(),
)


@pytest.fixture
def engine(make_engine: MakeEngine, tmp_path: Path) -> Engine:
    folder = journeys_folder(tmp_path, call=CALL)
    (folder / "config" / "queues.yaml").write_text(textwrap.dedent(DESK), encoding="utf-8")
    return make_engine(settings={"journeys_dir": folder})


def lead_in(n: int, region: str, language: str = "en", loan_type: str = "consumer") -> Any:
    lead = young_pro(n)
    return young_pro(
        n,
        contact={**lead.contact, "language": language},
        profile={**lead.profile, "region": region},
        interest={"loan_type": loan_type, "amount": "80000"},
    )


def tasks_by_lead(engine: Engine) -> dict[str, dict[str, Any]]:
    engine.refresh_views()
    return {t["lead_id"]: t for t in engine.index.tasks(include_done=True)}


def test_tasks_go_to_an_officer_with_the_skills_and_room_else_wait_with_the_reason(
    engine: Engine, clock: VirtualClock, store: str
) -> None:
    shanghai_1, beijing, shanghai_2, chengdu = engine.leads.capture_leads(
        [lead_in(1, "Shanghai"), lead_in(2, "Beijing"), lead_in(3, "Shanghai"), lead_in(4, "Sichuan")]
    )
    engine.run()
    tasks = tasks_by_lead(engine)
    # Both Shanghai tasks arrive together; whichever comes first takes li.na's one slot.
    first, second = sorted(
        (tasks[str(shanghai_1.lead_id)], tasks[str(shanghai_2.lead_id)]), key=lambda t: t["status"] != "assigned"
    )
    assert (first["status"], first["routed_to"]) == ("assigned", "li.na")
    assert (tasks[str(beijing.lead_id)]["status"], tasks[str(beijing.lead_id)]["routed_to"]) == ("assigned", "bob")
    assert second["status"] == "open" and second["held_reason"] == (
        "li.na is at capacity (1 of 1 open); bob is not licensed in Shanghai"
    )
    assert tasks[str(chengdu.lead_id)]["held_reason"] == (
        "li.na is not licensed in Sichuan; bob is not licensed in Sichuan"
    )
    # Running again changes nothing: a held reason is recorded once.
    assert engine.run().task_updates == 0
    # li.na finishes her call: the next run gives her the waiting Shanghai task.
    complete_task(engine, first["task_id"], "reached", "", "li.na")
    assert engine.run().task_updates == 1
    assert tasks_by_lead(engine)[second["lead_id"]]["routed_to"] == "li.na"
    task = engine.journeys.repository.get(UUID(second["task_id"]))
    assert isinstance(task, AgentTask) and task.assigned == "li.na"
    stored: list[Any] = list(engine.journeys.events.get(task.id))  # type: ignore[attr-defined]
    assert [type(e).__name__ for e in stored] == ["Opened", "Routed"]  # opened and held: one event
    assert stored[0].first["event"] == "RoutingHeld" and "at capacity" in stored[0].first["reason"]
    assert [type(e).__name__ for s in stored for e in told_task(s)] == ["Opened", "RoutingHeld", "Routed"]


def test_overdue_tasks_escalate_at_their_deadline_once(engine: Engine, clock: VirtualClock, store: str) -> None:
    t0 = clock.now()
    [out] = engine.leads.capture_leads([lead_in(1, "Beijing")])
    engine.run(until=t0 + timedelta(days=3))
    [task] = tasks_by_lead(engine).values()
    history = list(engine.journeys.events.get(UUID(task["task_id"])))  # type: ignore[attr-defined]
    escalated = [e for e in history if isinstance(e, AgentTask.Escalated)]
    # loan_officers: 4 h, exactly at its deadline; team_leads (1 d) escalates nowhere: the task
    # stays there, overdue by the clock from 28 h (no second event says so).
    assert [(e.from_queue, e.to_queue, e.at - t0) for e in escalated] == [
        ("loan_officers", "team_leads", timedelta(hours=4)),
    ]
    assert escalated[0].deadline == t0 + timedelta(hours=4)
    assert (task["queue"], task["routed_to"], task["escalations"]) == ("team_leads", "liu.yang", 1)
    assert engine.run(until=t0 + timedelta(days=9)).task_updates == 0  # nothing escalates twice
    [doc] = task_documents(engine, None, False)
    assert doc["lead"]["id"] == str(out.lead_id) and doc["overdue_at"] == (t0 + timedelta(hours=28)).isoformat()


def test_reassigning_names_only_queues_and_officers_on_the_desk(engine: Engine, store: str) -> None:
    engine.leads.capture_leads([lead_in(1, "Beijing")])
    engine.run()
    [task] = tasks_by_lead(engine).values()
    with pytest.raises(HuokeError, match="no queue 'loan_oficers' on the desk"):
        reassign_task(engine, task["task_id"], "loan_oficers", "", "me")
    with pytest.raises(HuokeError, match="no officer 'lina' on the desk"):
        reassign_task(engine, task["task_id"], "", "lina", "me")
    with pytest.raises(TaskNotYoursError, match="routed to bob: only they or a team lead"):
        reassign_task(engine, task["task_id"], "loan_officers", "li.na", "me")
    assert reassign_task(engine, task["task_id"], "loan_officers", "li.na", "me", admin=True).agent == "li.na"


def test_the_desk_file_and_the_journeys_that_name_queues_are_validated(tmp_path: Path) -> None:
    with pytest.raises(JourneyValidationError) as e:
        parse_desk(
            {
                "queues": [{"id": "a", "sla": "soon", "escalate_to": "nowhere"}, {"id": "a"}],
                "officers": [{"id": "x", "queues": ["b"], "capacity": 0}, {"name": "no id"}],
            },
            "queues.yaml",
        )
    assert e.value.problems == [
        "queues.yaml: queues[1]: sla: expected a duration like 4h or 1d, got 'soon'",
        "queues.yaml: queues[2]: queue 'a' is defined twice",
        "queues.yaml: officers[1]: capacity: expected a whole number of open tasks (1 or more), got 0",
        "queues.yaml: officers[1]: queues: ['b'] (the queues are a)",
        "queues.yaml: officers[2]: expected {id, name, queues: [..], regions, loan_types, languages, capacity}",
    ]


COPIED = {
    "task_states": "task_id, queue, agent, outcome, note, updated_at",
    "task_desk": "task_id, bucket, queue_since, routed_to, held_reason, escalated_at, escalations",
}
OLD_TASK_TABLES = {
    "task_states": "(task_id TEXT PRIMARY KEY, queue TEXT NOT NULL, agent TEXT NOT NULL, outcome TEXT NOT NULL, "
    "note TEXT NOT NULL, updated_at TEXT NOT NULL)",
    "task_desk": "(task_id TEXT PRIMARY KEY, bucket INTEGER NOT NULL, queue_since TEXT NOT NULL, "
    "routed_to TEXT NOT NULL, held_reason TEXT NOT NULL, escalated_at TEXT NOT NULL, escalations INTEGER NOT NULL)",
}


def test_a_store_from_before_desk_tasks_keeps_every_task_as_it_was(
    engine: Engine, clock: VirtualClock, store: str
) -> None:
    """Older stores kept a task's work in two tables (task_states, task_desk): opening one folds
    them into desk_tasks, drops them, and every task reads as before (claimed, done, held,
    routed, escalated)."""
    t0 = clock.now()
    regions = ["Shanghai", "Shanghai", "Shanghai", "Beijing", "Beijing"]
    leads = engine.leads.capture_leads([lead_in(n, region) for n, region in enumerate(regions)])
    engine.run()
    first = next(t for t in tasks_by_lead(engine).values() if t["routed_to"] == "li.na")
    complete_task(engine, first["task_id"], "reached", "called back", "li.na")
    claim_task(engine, next(t for t in tasks_by_lead(engine).values() if t["routed_to"] == "bob")["task_id"], "bob")
    engine.run(until=t0 + timedelta(hours=3))
    before = tasks_by_lead(engine)
    assert len(before) == len(leads)
    assert sorted(t["status"] for t in before.values()) == ["assigned", "assigned", "claimed", "done", "open"]
    assert [t["held_reason"] for t in before.values() if t["status"] == "open"] == [
        "li.na is at capacity (1 of 1 open); bob is not licensed in Shanghai"
    ]
    index: Any = engine.index
    name = (lambda t: f'"{index.datastore.schema}"."{t}"') if index.is_postgres else (lambda t: t)
    with index.transaction() as c:  # the layout of the older store, with the same tasks
        for table, columns in OLD_TASK_TABLES.items():
            c.execute(f"CREATE TABLE {name(table)} {columns}")
        for table, columns in COPIED.items():
            c.execute(f"INSERT INTO {name(table)} SELECT {columns} FROM {name('desk_tasks')}")  # noqa: S608
        c.execute(f"DELETE FROM {name('desk_tasks')}")  # noqa: S608
    assert tasks_by_lead(engine) == {}
    index.create_table()  # what `huoke db init` does
    assert tasks_by_lead(engine) == before
    index.create_table()  # and again: nothing left to fold
    assert tasks_by_lead(engine) == before
    # The desk works on from the folded rows: the open tasks escalate at their deadline, once.
    assert engine.run(until=t0 + timedelta(hours=5)).task_updates == 8  # 4 escalated, then routed
    assert engine.run(until=t0 + timedelta(hours=6)).task_updates == 0
    after = tasks_by_lead(engine)
    waiting = next(lead for lead, t in before.items() if t["status"] == "open")
    assert (after[waiting]["queue"], after[waiting]["routed_to"], after[waiting]["escalations"]) == (
        "team_leads",
        "liu.yang",
        1,
    )


def test_the_task_report_counts_each_queue_its_overdue_tasks_and_hours_to_first_contact(
    engine: Engine, clock: VirtualClock
) -> None:
    from engine.application.analytics import tasks_report

    t0 = clock.now()
    engine.leads.capture_leads([lead_in(1, "Beijing"), lead_in(2, "Beijing"), lead_in(3, "Shanghai")])
    engine.run(until=t0 + timedelta(hours=1))
    tasks = tasks_by_lead(engine)
    done_ones = sorted(t["task_id"] for t in tasks.values() if t["routed_to"] == "bob")
    clock.advance_to(t0 + timedelta(hours=2))
    complete_task(engine, done_ones[0], "reached", "", "bob")
    clock.advance_to(t0 + timedelta(hours=3))
    complete_task(engine, done_ones[1], "no_answer", "", "bob")
    engine.run(until=t0 + timedelta(hours=5))  # the Shanghai task is past loan_officers' 4 h
    engine.refresh_views()
    doc = tasks_report(engine, "Asia/Shanghai")
    queues = {q["queue"]: q for q in doc["queues"]}
    officers = queues["loan_officers"]
    # All three were created in loan_officers; the Shanghai one was escalated on to team_leads.
    assert (officers["created"], officers["escalated"], officers["done"], officers["open"]) == (3, 1, 2, 0)
    assert officers["outcomes"] == {"no_answer": 1, "reached": 1}
    assert officers["hours_to_first_contact"] == {"median": 2.5, "p90": 3.0}
    assert officers["sla_hours"] == 4.0
    leads = queues["team_leads"]  # it arrived at 4 h and sits there, its stint's day not yet over
    assert (leads["created"], leads["escalated_in"], leads["open"], leads["overdue"]) == (0, 1, 1, 0)
    engine.run(until=t0 + timedelta(hours=29))
    engine.refresh_views()
    queues = {q["queue"]: q for q in tasks_report(engine, "Asia/Shanghai")["queues"]}
    assert queues["team_leads"]["overdue"] == 1


def test_the_desk_passes_only_when_a_task_changed_or_a_deadline_came(
    engine: Engine, clock: VirtualClock, store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    t0 = clock.now()
    engine.leads.capture_leads([lead_in(1, "Beijing")])
    engine.run(until=t0 + timedelta(hours=1))
    engine.refresh_views()
    looked = count_calls(monkeypatch, engine.index, "unrouted_tasks")
    desk = engine.task_desk
    changes = engine.index.desk_changes()
    assert changes >= 2  # the task was opened and routed
    desk.work(engine.parts, clock.now())  # the first pass of this desk looks
    looked.clear()
    assert desk.work(engine.parts, clock.now() + timedelta(hours=1)) == 0
    assert looked == []  # nothing changed, no deadline passed: no query
    # The service level (4 h) runs out: the desk passes again and escalates.
    assert desk.work(engine.parts, t0 + timedelta(hours=4, minutes=1)) == 1
    assert looked
    engine.refresh_views()
    assert engine.index.desk_changes() == changes + 1


def test_a_freed_slot_reads_the_lead_of_the_task_it_takes_not_of_every_waiting_one(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, store: str
) -> None:
    """Forty Shanghai tasks wait for li.na's one slot. When she finishes a call, the desk reads
    the lead of the oldest waiting task and routes it to her; the others, held for her being
    full, keep their reason as it is, and no other lead is read."""
    engine.leads.capture_leads([lead_in(n, "Shanghai") for n in range(1, 42)])
    engine.run()
    tasks = tasks_by_lead(engine)
    [busy] = [t for t in tasks.values() if t["status"] == "assigned"]
    held = {t["task_id"]: t["held_reason"] for t in tasks.values() if t["status"] == "open"}
    assert len(held) == 40 and set(held.values()) == {
        "li.na is at capacity (1 of 1 open); bob is not licensed in Shanghai"
    }
    complete_task(engine, busy["task_id"], "reached", "", "li.na")
    read: list[UUID] = []
    desk = engine.task_desk
    real = desk.leads_of

    def leads_of(ids: list[UUID]) -> Any:
        read.extend(ids)
        return real(ids)

    monkeypatch.setattr(desk, "leads_of", leads_of)
    assert engine.run().task_updates == 1
    after = tasks_by_lead(engine)
    [routed] = [t for t in after.values() if t["task_id"] in held and t["status"] == "assigned"]
    assert routed["routed_to"] == "li.na" and read == [UUID(routed["lead_id"])]
    oldest = min((t for t in tasks.values() if t["task_id"] in held), key=lambda t: (t["queue_since"], t["task_id"]))
    assert routed["task_id"] == oldest["task_id"]
    assert {t["task_id"]: t["held_reason"] for t in after.values() if t["status"] == "open"} == {
        k: v for k, v in held.items() if k != routed["task_id"]
    }
