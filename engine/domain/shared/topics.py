"""Stored event names are schema: every event keeps the topic it was first stored under.

eventsourcing names an event by ``module:qualname`` unless the class says otherwise. Our
aggregates moved into bounded-context packages, so each aggregate module calls
:func:`keep_topics` with the module path its events were first stored under: every event
class gets that name as its explicit ``TOPIC`` (the name new events are stored under and the
name log followers filter on), and the old module path resolves to the new module (so the
aggregate topics inside stored ``Created`` events and snapshots still load). Moving a module
again only changes the ``module`` argument, never the stored names.
"""

from __future__ import annotations

import sys

from eventsourcing.domain import Aggregate, CanMutateAggregate
from eventsourcing.utils import register_topic


def keep_topics(module: str, stored_as: str, *aggregates: type[Aggregate]) -> None:
    """Pin the event topics of ``aggregates`` (defined in ``module``) under ``stored_as``."""
    for aggregate in aggregates:
        for value in list(vars(aggregate).values()):
            if isinstance(value, type) and issubclass(value, CanMutateAggregate) and "TOPIC" not in vars(value):
                value.TOPIC = f"{stored_as}:{value.__qualname__}"  # type: ignore[attr-defined]
    if stored_as != module:
        register_topic(stored_as, sys.modules[module])
