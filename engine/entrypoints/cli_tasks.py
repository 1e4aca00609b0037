"""``huoke tasks …``: the call and visit tasks journeys create for loan officers — list them by
due time with who to call and why, claim, complete with an outcome, hand on."""

from __future__ import annotations

from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer

from engine.application.journeys.tasks import claim_task, complete_task, reassign_task, task_documents
from engine.domain.journeys.agent_task import OUTCOMES
from engine.entrypoints.cli_common import (
    JsonOpt,
    console,
    current_user,
    emit_json,
    err,
    opened,
    settings,
    tasks_app,
)
from engine.presentation import journeys


@tasks_app.command("list")
def tasks_list(
    queue: Annotated[str | None, typer.Option()] = None,
    include_done: Annotated[bool, typer.Option("--all", help="done tasks too")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Call and visit tasks journeys created, by due time, with who to call and why."""
    s = settings()
    with opened(s) as engine:
        engine.refresh_views()
        tasks = task_documents(engine, queue, include_done)
        now = engine.clock.now()
    if as_json:
        emit_json({"schema": "huoke.tasks/1", "tasks": tasks})
        return
    zone = ZoneInfo(s.timezone)
    late = [t["status"] != "done" and journeys.is_past(t["overdue_at"], now) for t in tasks]
    for t, overdue_now in zip(tasks, late, strict=True):
        console.print(journeys.task_card(t, zone, overdue_now), highlight=False)
    overdue = sum(late)
    where = f" in {queue}" if queue else ""
    err.print(f"{len(tasks)} task(s){where}{f', {overdue} overdue' if overdue else ''}; times in {s.timezone}")


Agent = Annotated[str, typer.Option("--agent", help="who works the task (default: you)")]


def _task_action(run: Any) -> None:
    with opened(settings()) as engine:
        engine.refresh_views()
        task = run(engine)
    console.print(journeys.task_state(task))


@tasks_app.command("claim")
def tasks_claim(task: str, agent: Agent = "") -> None:
    """Take a task (by id or the first characters of it, as tasks list shows)."""
    _task_action(lambda engine: claim_task(engine, task, agent or current_user()))


@tasks_app.command("complete")
def tasks_complete(
    task: str,
    outcome: Annotated[str, typer.Option(help=f"one of {', '.join(OUTCOMES)}")],
    note: Annotated[str, typer.Option(help="what was said")] = "",
    agent: Agent = "",
) -> None:
    """Close a task with its outcome; opted_out withdraws the lead's marketing consent at once."""
    _task_action(lambda engine: complete_task(engine, task, outcome, note, agent or current_user()))


@tasks_app.command("reassign")
def tasks_reassign(
    task: str,
    queue: Annotated[str, typer.Option(help="another queue")] = "",
    to: Annotated[str, typer.Option("--to", help="another agent (empty: back to the queue)")] = "",
    agent: Agent = "",
) -> None:
    """Hand a task to another queue or agent."""
    _task_action(lambda engine: reassign_task(engine, task, queue, to, agent or current_user()))
