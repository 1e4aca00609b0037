"""One event where there were two (the lean log): an aggregate's creation in a pass records the
decision taken on it in the same pass (a delivery's first hold, a task's first routing), and
readers are told that decision as the event it would have been."""

from __future__ import annotations

from typing import Any

#: The fields every event has, not the decision's own.
_BOOKKEEPING = frozenset({"originator_id", "originator_version", "timestamp", "originator_topic"})


def decision_of(decided: Any) -> dict[str, Any]:
    """A pending decision event as the ``first`` a creation event records: its own fields and
    its ``event`` name."""
    return {"event": type(decided).__name__, **{k: v for k, v in vars(decided).items() if k not in _BOOKKEEPING}}


def told_decision(created: Any, classes: dict[str, type[Any]]) -> list[Any]:
    """A creation event as the events it tells: itself, then its ``first`` decision rebuilt as
    the event of that name among ``classes`` (none when it records none)."""
    first = getattr(created, "first", None)
    if not first or first["event"] not in classes:
        return [created]
    fields = {k: v for k, v in first.items() if k != "event"}
    decided = classes[first["event"]](
        originator_id=created.originator_id,
        originator_version=created.originator_version,
        timestamp=created.timestamp,
        **fields,
    )
    return [created, decided]
