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


def rebuilt(cls: type[Any], recorded: dict[str, Any], originator_id: Any, version: int, timestamp: Any) -> Any:
    """The event of class ``cls`` a creation event recorded (``recorded``: its fields, perhaps
    with its ``event`` name), as the creation event's originator, version and time."""
    fields = {k: v for k, v in recorded.items() if k != "event"}
    return cls(originator_id=originator_id, originator_version=version, timestamp=timestamp, **fields)


def told_decision(created: Any, classes: dict[str, type[Any]]) -> list[Any]:
    """A creation event as the events it tells: itself, then its ``first`` decision rebuilt as
    the event of that name among ``classes`` (none when it records none)."""
    first = getattr(created, "first", None)
    if not first or first["event"] not in classes:
        return [created]
    decided = rebuilt(
        classes[first["event"]], first, created.originator_id, created.originator_version, created.timestamp
    )
    return [created, decided]


def apply_decision(aggregate: Any, first: dict[str, Any] | None, classes: dict[str, type[Any]]) -> None:
    """Give the aggregate being created (in its creation's ``__init__``) the state its
    ``first`` decision gave it when it was an event of its own: that event's own ``@event``
    method runs (eventsourcing's ``apply``), so the state is set in one place."""
    if first and first["event"] in classes:
        rebuilt(classes[first["event"]], first, aggregate.id, aggregate.version, aggregate.created_on).apply(aggregate)
