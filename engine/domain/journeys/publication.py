"""PublishedJourney: the immutable, numbered versions of one journey, and its live status."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from engine.domain.shared.errors import JourneyStatusError
from engine.domain.shared.topics import keep_topics
from engine.domain.shared.values import JourneyStatus, JSONDict, derive_id


def published_journey_id(journey_id: str) -> UUID:
    return derive_id("journey", journey_id)


class PublishedJourney(Aggregate):
    """Every published version of a journey, with author, summary, status and entry count."""

    class Created(Aggregate.Created):
        journey_id: str

    class VersionPublished(Aggregate.Event):
        number: int
        content_hash: str
        definition: JSONDict
        templates_hash: str
        source: str
        author: str
        summary: str
        migration: JSONDict
        at: datetime

    class Paused(Aggregate.Event):
        by: str
        reason: str
        at: datetime

    class Resumed(Aggregate.Event):
        by: str
        at: datetime

    class Archived(Aggregate.Event):
        by: str
        reason: str
        at: datetime

    class EntriesCounted(Aggregate.Event):
        added: int
        at: datetime

    @event(Created)
    def __init__(self, journey_id: str) -> None:
        self.journey_id = journey_id
        self.versions: dict[int, JSONDict] = {}
        self.hashes: dict[int, str] = {}
        #: who published each version, when, from which file and why (the dashboard's history)
        self.published: dict[int, dict[str, Any]] = {}
        self.status = JourneyStatus.LIVE
        self.pauses: list[tuple[datetime, datetime | None]] = []
        self.entries = 0

    @staticmethod
    def create_id(journey_id: str, **_: Any) -> UUID:
        return published_journey_id(journey_id)

    @property
    def latest(self) -> int:
        return max(self.versions, default=0)

    def is_unchanged(self, content_hash: str) -> bool:
        return bool(self.latest) and self.hashes[self.latest] == content_hash

    def publish(
        self,
        content_hash: str,
        definition: JSONDict,
        templates_hash: str,
        source: str,
        author: str,
        at: datetime,
        summary: str = "",
        migration: JSONDict | None = None,
    ) -> int:
        """Publish a new version unless the journey is unchanged; return the live version.

        ``templates_hash`` records which copy was live when this version was published.
        """
        if self.status == JourneyStatus.ARCHIVED:
            raise JourneyStatusError(f"journey {self.journey_id!r} is archived; give it a new id")
        if self.is_unchanged(content_hash):
            return self.latest
        self._version_published(
            number=self.latest + 1,
            content_hash=content_hash,
            definition=definition,
            templates_hash=templates_hash,
            source=source,
            author=author,
            summary=summary or ("first version" if not self.latest else "updated"),
            migration=migration or {},
            at=at,
        )
        return self.latest

    @event(VersionPublished)
    def _version_published(
        self,
        number: int,
        content_hash: str,
        definition: JSONDict,
        templates_hash: str,
        source: str,
        author: str,
        summary: str,
        migration: JSONDict,
        at: datetime,
    ) -> None:
        self.versions[number] = definition
        self.hashes[number] = content_hash
        self.published[number] = {"author": author, "summary": summary, "at": at, "source": source}

    def pause(self, by: str, reason: str, at: datetime) -> None:
        if self.status != JourneyStatus.LIVE:
            raise JourneyStatusError(f"journey {self.journey_id!r} is {self.status}, not live")
        self._paused(by=by, reason=reason, at=at)

    @event(Paused)
    def _paused(self, by: str, reason: str, at: datetime) -> None:
        self.status = JourneyStatus.PAUSED
        self.pauses.append((at, None))

    def resume(self, by: str, at: datetime) -> None:
        if self.status != JourneyStatus.PAUSED:
            raise JourneyStatusError(f"journey {self.journey_id!r} is {self.status}, not paused")
        self._resumed(by=by, at=at)

    @event(Resumed)
    def _resumed(self, by: str, at: datetime) -> None:
        self.status = JourneyStatus.LIVE
        start, _ = self.pauses[-1]
        self.pauses[-1] = (start, at)

    def archive(self, by: str, reason: str, at: datetime) -> None:
        if self.status == JourneyStatus.ARCHIVED:
            raise JourneyStatusError(f"journey {self.journey_id!r} is already archived")
        self._archived(by=by, reason=reason, at=at)

    @event(Archived)
    def _archived(self, by: str, reason: str, at: datetime) -> None:
        self.status = JourneyStatus.ARCHIVED

    def fell_due_while_paused(self, due_at: datetime) -> bool:
        """Whether a timer due at ``due_at`` came due during a (now ended) pause."""
        return any(start <= due_at and (end is None or due_at < end) for start, end in self.pauses)

    def count_entries(self, added: int, at: datetime) -> None:
        if added:
            self._entries_counted(added=added, at=at)

    @event(EntriesCounted)
    def _entries_counted(self, added: int, at: datetime) -> None:
        self.entries += added


keep_topics("engine.domain.publication", PublishedJourney)
