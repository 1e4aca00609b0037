"""How the state of the processes looks in a terminal: each view's lag, each worker's last
tick and share, timers pending and messages held."""

from __future__ import annotations

from typing import Any

from rich.console import RenderableType

from engine.presentation.tables import plain_table


def status(doc: dict[str, Any]) -> list[RenderableType]:
    """``huoke status``."""
    out: list[RenderableType] = []
    table = plain_table("Views (events not yet applied)")
    for col in ("view", "log", "applied up to", "log at", "behind"):
        table.add_column(col, justify="left" if col in {"view", "log"} else "right")
    for row in doc["views"]:
        table.add_row(row["view"], row["log"], str(row["applied"]), str(row["head"]), str(row["behind"]))
    out.append(table)
    wt = plain_table("Workers")
    for col in ("worker", "last tick", "partitions", "views", "last report"):
        wt.add_column(col, overflow="fold")
    for w in doc["workers"]:
        state = "" if w["alive"] else " (gone)"
        wt.add_row(w["worker_id"] + state, w["last_tick"][:19], w["partitions"], w["views"], w["report"])
    out.append(wt if doc["workers"] else "no worker has reported")
    out.append(f"{doc['pending_timers']} follow-up timer(s) pending; {doc['held_messages']} message(s) held")
    return out
