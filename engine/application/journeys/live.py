"""Which version of each journey is live: the published versions (parsed once), the one new
leads enter, and its status (live, paused, archived), picked up from the log whichever process
published or paused it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.utils import get_topic

from engine.domain.journeys.interpreter import entry_trigger
from engine.domain.journeys.journey import Journey
from engine.domain.journeys.parsing import parse_journey
from engine.domain.journeys.publication import PublishedJourney, published_journey_id
from engine.domain.shared.errors import UnknownJourneyError
from engine.domain.shared.values import JourneyStatus
from engine.eventstore import ProcessRecorder
from engine.eventstore.saving import fresh_get, latest_versions

PUBLICATION_TOPICS = [get_topic(PublishedJourney.Created)]


@dataclass(frozen=True)
class LiveJourney:
    """A journey's live version, its definition and status."""

    version: int
    journey: Journey
    status: str = JourneyStatus.LIVE
    publication: PublishedJourney | None = None

    @cached_property
    def trigger(self) -> str:
        """The one trigger that can enter a lead into this journey."""
        return entry_trigger(self.journey)


class LiveVersions:
    """The Journeys application's live versions (a mixin: the store is the application's)."""

    live: dict[str, LiveJourney]
    _definitions: dict[tuple[str, int], Journey]
    _publications_seen: int
    _publication_versions: dict[UUID, int]
    if TYPE_CHECKING:
        recorder: ProcessRecorder

    def _store(self) -> Application[Any]:
        return cast("Application[Any]", self)

    def publication(self, journey_id: str) -> PublishedJourney | None:
        """The journey's publication as committed now (another process may publish or pause)."""
        try:
            pub: PublishedJourney = fresh_get(self._store(), published_journey_id(journey_id))
        except AggregateNotFoundError:
            return None
        return pub

    def go_live(self, journey_ids: Iterable[str]) -> None:
        """Make the latest published version of each journey the one new leads enter."""
        for jid in journey_ids:
            pub = self.publication(jid)
            if pub is not None:
                self._make_live(pub)

    def _make_live(self, pub: PublishedJourney) -> None:
        if pub.latest:
            jid = pub.journey_id
            self.live[jid] = LiveJourney(pub.latest, self.definition(jid, pub.latest), pub.status, pub)
        self._publication_versions[pub.id] = pub.version

    def refresh_live(self) -> None:
        """Pick up journeys published, paused, resumed or archived by any process since the last
        look (publications are rare: one indexed read of the new part of the log)."""
        top = self.recorder.max_notification_id() or 0
        if top > self._publications_seen:
            notes = self.recorder.select_notifications(
                start=self._publications_seen or None,
                limit=1_000_000,
                stop=top,
                topics=PUBLICATION_TOPICS,
                inclusive_of_start=False,
            )
            for note in notes:
                self._publication_versions.setdefault(UUID(str(note.originator_id)), 0)
            self._publications_seen = top
        # One query tells which publications changed; only those are read again.
        for pid, version in latest_versions(self._store(), self._publication_versions).items():
            if version != self._publication_versions[pid]:
                self._make_live(cast(PublishedJourney, fresh_get(self._store(), pid)))

    def definition(self, journey_id: str, version: int) -> Journey:
        """The definition of a published version (parsed once, then cached)."""
        key = (journey_id, version)
        if key not in self._definitions:
            pub = self.publication(journey_id)
            if pub is None or version not in pub.versions:
                raise UnknownJourneyError(f"journey {journey_id!r} has no published version {version}")
            self._definitions[key] = parse_journey(pub.versions[version], f"{journey_id} v{version}")
        return self._definitions[key]

    def paused_journeys(self) -> list[str]:
        return [jid for jid, live in self.live.items() if live.status == JourneyStatus.PAUSED]
