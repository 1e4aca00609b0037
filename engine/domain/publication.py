"""PublishedJourney: the immutable, numbered versions of one journey definition."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from engine.domain.values import JSONDict, derive_id


def published_journey_id(journey_id: str) -> UUID:
    return derive_id("journey", journey_id)


class PublishedJourney(Aggregate):
    """Every published version of a journey, with its content hash and definition."""

    class Created(Aggregate.Created):
        journey_id: str

    class VersionPublished(Aggregate.Event):
        number: int
        content_hash: str
        definition: JSONDict
        templates_hash: str
        source: str
        author: str
        at: datetime

    @event(Created)
    def __init__(self, journey_id: str) -> None:
        self.journey_id = journey_id
        self.versions: dict[int, JSONDict] = {}
        self.hashes: dict[int, str] = {}

    @staticmethod
    def create_id(journey_id: str, **_: Any) -> UUID:
        return published_journey_id(journey_id)

    @property
    def latest(self) -> int:
        return max(self.versions, default=0)

    def publish(
        self, content_hash: str, definition: JSONDict, templates_hash: str, source: str, author: str, at: datetime
    ) -> int:
        """Publish a new version unless the journey is unchanged; return the live version.

        ``templates_hash`` is recorded for audit: which copy was live when this version was.
        """
        if self.latest and self.hashes[self.latest] == content_hash:
            return self.latest
        self._version_published(
            number=self.latest + 1,
            content_hash=content_hash,
            definition=definition,
            templates_hash=templates_hash,
            source=source,
            author=author,
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
        at: datetime,
    ) -> None:
        self.versions[number] = definition
        self.hashes[number] = content_hash
