"""Event names are schema: the topics events were stored under never change, wherever the code moves."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from eventsourcing.domain import Aggregate, CanMutateAggregate
from eventsourcing.utils import get_topic, resolve_topic

import engine.domain

STORED = Path(__file__).parents[1] / "fixtures" / "event_topics.txt"


def _aggregates() -> list[type[Aggregate]]:
    found = []
    for info in pkgutil.walk_packages(engine.domain.__path__, "engine.domain."):
        module = importlib.import_module(info.name)
        found += [
            v
            for v in vars(module).values()
            if isinstance(v, type) and issubclass(v, Aggregate) and v.__module__ == module.__name__
        ]
    return found


def _events(aggregate: type[Aggregate]) -> list[type[CanMutateAggregate[object]]]:  # type: ignore[type-var]
    return [e for e in vars(aggregate).values() if isinstance(e, type) and issubclass(e, CanMutateAggregate)]


def test_every_event_class_names_its_stored_topic_explicitly() -> None:
    events = [e for a in _aggregates() for e in _events(a)]
    assert len(events) > 60
    missing = [e.__qualname__ for e in events if "TOPIC" not in vars(e)]
    assert missing == []
    topics = [get_topic(e) for e in events]
    assert len(set(topics)) == len(topics)


def test_the_stored_topics_are_exactly_the_topics_written_today() -> None:
    """A new event adds a line to the fixture; a renamed or moved one fails here."""
    stored = set(STORED.read_text().split())
    written = {get_topic(e) for a in _aggregates() for e in _events(a)}
    assert written == {t for t in stored if "." in t.partition(":")[2]}


def test_every_stored_topic_resolves_to_its_class_today() -> None:
    """Aggregate topics in stored Created events and snapshots (old module paths) still load."""
    by_name = {a.__qualname__: a for a in _aggregates()}
    for topic in STORED.read_text().split():
        qualname = topic.partition(":")[2]
        aggregate, _, event = qualname.partition(".")
        expected = getattr(by_name[aggregate], event) if event else by_name[aggregate]
        assert resolve_topic(topic) is expected, topic
