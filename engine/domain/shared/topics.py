"""Stored event names are schema: every event keeps the topic it was first stored under.

eventsourcing names an event by ``module:qualname`` unless the class says otherwise. Our
aggregates moved into bounded-context packages, so each aggregate module calls
:func:`keep_topics` with the module path its events were first stored under: every event
class gets that name as its explicit ``TOPIC`` (the name new events are stored under and the
name log followers filter on), and each old name, the aggregate's included (it is inside
stored ``Created`` events and snapshots), is registered to resolve to today's class. Moving a
class again changes nothing stored.
"""

from __future__ import annotations

from eventsourcing.domain import Aggregate, CanMutateAggregate
from eventsourcing.utils import register_topic


def keep_topics(stored_as: str, *aggregates: type[Aggregate]) -> None:
    """Pin the topics of ``aggregates`` and their events under the module path ``stored_as``."""
    for aggregate in aggregates:
        register_topic(f"{stored_as}:{aggregate.__qualname__}", aggregate)
        for value in list(vars(aggregate).values()):
            if isinstance(value, type) and issubclass(value, CanMutateAggregate):
                if "TOPIC" not in vars(value):
                    value.TOPIC = f"{stored_as}:{value.__qualname__}"  # type: ignore[attr-defined]
                register_topic(value.TOPIC, value)  # type: ignore[attr-defined]
