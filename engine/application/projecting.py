"""Follow an application's notification log in pages: the shared loop of every reactor and view.

Pages are read by position only and filtered by topic in Python, and the position recorded is
the last notification *read*, not the last one that matched. (Filtering by topic in SQL and
tracking the last match makes every later read rescan all the non-matching events after it:
measured here as the demo's largest cost before this change.)

Reactors that several workers share follow the log per lead partition (``next_owned_page``):
one read serves every partition the worker owns, and each owned partition's position advances
in the same transaction as the events the page caused.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.application import Application

from engine.application.partitions import Partitions, Stop, never
from engine.eventstore import ApplicationRecorder, Notification, Tracking, TrackingRecorder
from engine.eventstore.saving import decode_page, keep_recent_events, recent_events


@dataclass(frozen=True)
class Page:
    """The matching notifications of one page, and the position to record after it."""

    notes: list[Notification]
    last: int


def next_page(recorder: ApplicationRecorder, position: int | None, topics: Collection[str], limit: int) -> Page | None:
    """The next ``limit`` notifications after ``position``, keeping those with ``topics``; None at
    the end. (The referrals' followers read so: a page is a slice of the log, its rewards one
    transaction of a few, not every reward due at once.)"""
    scanned = recorder.select_notifications(start=position, limit=limit, inclusive_of_start=False)
    if not scanned:
        return None
    wanted = set(topics)
    return Page([n for n in scanned if n.topic in wanted], scanned[-1].id)


def scan(recorder: ApplicationRecorder, position: int, topics: Collection[str], limit: int) -> Page | None:
    """Up to ``limit`` notifications of ``topics`` after ``position``, and the position the page
    reaches: its last one's if it is full, else the log's head as read before it (the rest up to
    the head has other topics: a follower never reads it again). None at the head. The database
    filters the topics: the rows of other topics are neither fetched nor made notifications."""
    head = recorder.max_notification_id() or 0
    if position >= head:
        return None
    notes = recorder.select_notifications(
        start=position or None, limit=limit, stop=head, topics=sorted(topics), inclusive_of_start=False
    )
    return Page(list(notes), notes[-1].id if len(notes) == limit else head)


def matching_notifications(
    recorder: ApplicationRecorder, topics: Collection[str], page: int = 1000, start: int | None = None
) -> Iterator[Notification]:
    """Every notification of ``topics`` in the log after ``start`` (all by default), oldest first
    (read ``page`` at a time, filtered in the database: for reading a log once, not for following
    it)."""
    position = start or None
    while notes := recorder.select_notifications(
        start=position, limit=page, topics=list(topics), inclusive_of_start=False
    ):
        yield from notes
        position = notes[-1].id


def event_time(event: Any) -> datetime:
    """When an event happened by the engine's clock (``at``; a lead's ``captured_at``)."""
    moment: datetime = getattr(event, "at", None) or getattr(event, "captured_at", None) or event.timestamp
    return moment


def reads_personal(view: Any) -> bool:
    """Whether a view reads the personal fields sealed in events (views declare it; by default
    they hold counts and states, never personal data, so nothing is decrypted for them)."""
    return bool(getattr(view, "personal", True))


def replay_until(
    view: Any,
    upstream: Application[Any],
    topics: Collection[str],
    moment: datetime,
    page: int = 1000,
    advance: Callable[[int], None] | None = None,
) -> int:
    """Apply to ``view`` every event of ``topics`` in ``upstream``'s log that happened by
    ``moment``, from where the view got to (an empty view: from the start): the view as it stood
    then. Returns how many events it applied; ``advance(n)`` hears how far along the log each
    page moved it."""
    applied, position = 0, view.max_tracking_id(upstream.name)
    while notes := upstream.recorder.select_notifications(
        start=position, limit=page, topics=list(topics), inclusive_of_start=False
    ):
        events = [e for e in decode_page(upstream.mapper, notes, reads_personal(view)) if event_time(e) <= moment]
        view.apply_batch(events, Tracking(upstream.name, notes[-1].id))
        applied += len(events)
        if advance is not None:
            advance(notes[-1].id - (position or 0))
        position = notes[-1].id
    return applied


@dataclass(frozen=True)
class OwnedPage:
    """The decoded events of one page that belong to owned partitions and are new to them, and
    the tracking records that move every owned partition past the page."""

    events: list[Any]
    trackings: list[Tracking]


def owned_positions(follower: TrackingRecorder, upstream: str, parts: Partitions) -> dict[int, int]:
    """Where each owned partition stands in ``upstream``'s log (0: nothing read yet); one query
    for them all where the follower's recorder reads several names at once."""
    names = {p: parts.tracking_name(upstream, p) for p in sorted(parts.owned)}
    many = getattr(follower, "max_tracking_ids", None)
    if many is None or len(names) == 1:
        return {p: follower.max_tracking_id(name) or 0 for p, name in names.items()}
    known = many(list(names.values()))
    return {p: known.get(name, 0) for p, name in names.items()}


def next_owned_page(
    follower: TrackingRecorder,
    upstream: Application[Any],
    topics: Collection[str],
    parts: Partitions,
    limit: int,
    lead_of: Callable[[Any], UUID] | None = None,
    before: datetime | None = None,
    tracked_as: str | None = None,
    personal: bool = True,
) -> OwnedPage | None:
    """The next page of ``upstream``'s log for the partitions in ``parts``; None at the end.

    An event's partition is its lead's: ``lead_of(event)``, or the notification's originator
    (then notifications of other partitions are not even decoded). With ``before``, the page
    ends at the first event that happened after it (a run up to a moment leaves later events,
    such as leads captured after it, for a later run); None when that is the first. The
    follower's positions are kept under ``tracked_as`` (default: the upstream's name).
    ``personal`` False: the events' sealed fields stay shut (placeholders in their place), for a
    follower that reads nothing personal from them.
    """
    name = tracked_as or upstream.name
    positions = owned_positions(follower, name, parts)
    if not positions:
        return None
    page = scan(upstream.recorder, min(positions.values()), topics, limit)
    if page is None:
        return None
    notes, recent = page.notes, recent_events(upstream)
    if lead_of is None:  # the originator's partition: the others' notifications are not decoded
        notes = [n for n in notes if n.id > positions.get(parts.of(UUID(str(n.originator_id))), n.id)]
        pairs = list(zip(notes, decode_page(upstream.mapper, notes, personal, recent), strict=True))
    else:
        pairs = [
            (n, e)
            for n, e in zip(notes, decode_page(upstream.mapper, notes, personal, recent), strict=True)
            if n.id > positions.get(parts.of(lead_of(e)), n.id)
        ]
    last = page.last
    if before is not None:
        later = next((i for i, (_, e) in enumerate(pairs) if event_time(e) > before), None)
        if later is not None:
            if later == 0:
                return None
            last = pairs[later][0].id - 1  # up to the event before it
            pairs = pairs[:later]
    events = [e for _, e in pairs]
    trackings = [Tracking(parts.tracking_name(name, p), last) for p, pos in positions.items() if last > pos]
    return OwnedPage(events, trackings)


def drain(one_page: Callable[[], int | None], stop: Stop = never) -> int:
    """Run ``one_page`` until the log is read to its end (it returns None) or ``stop()`` says the
    pass is over; return how many events the pages processed."""
    done = 0
    while (n := one_page()) is not None:
        done += n
        if stop():
            break
    return done


def first_unread(follower: TrackingRecorder, upstream: str, parts: Partitions) -> int | None:
    """The lowest position any owned partition has reached (None: nothing read yet)."""
    positions = owned_positions(follower, upstream, parts)
    return min(positions.values(), default=0) or None


class BatchView(Protocol):
    """A view that applies a batch of events with one tracking record, atomically."""

    def max_tracking_id(self, application_name: str) -> int | None: ...

    def apply_batch(self, events: Sequence[Any], tracking: Tracking) -> None: ...


def catch_up_together(
    followers: Sequence[tuple[BatchView, Collection[str]]], upstream: Application[Any], page: int = 2000
) -> int:
    """Bring every (view, topics) of ``followers`` to the end of ``upstream``'s log with one read
    of each page and one decoding of each event, however many of the views want it; each view
    gets the events of its topics after its own position, with the page's last position as its
    tracking record. Returns how many events were applied."""
    done = 0
    positions = [view.max_tracking_id(upstream.name) or 0 for view, _ in followers]
    wanted = [set(topics) for _, topics in followers]
    personal = [reads_personal(view) for view, _ in followers]
    recent = keep_recent_events(upstream)  # what this process saves is read from memory
    while True:
        scanned = upstream.recorder.select_notifications(
            start=min(positions) or None, limit=page, inclusive_of_start=False
        )
        if not scanned:
            return done
        last = scanned[-1].id
        picked = [
            [n for n in scanned if n.id > at and n.topic in topics]
            for at, topics in zip(positions, wanted, strict=True)
        ]
        decoded: dict[tuple[int, bool], Any] = {}
        for opened in (False, True):  # each wanted event decoded once (opened for views that read sealed fields)
            ids = {n.id for p, notes in zip(personal, picked, strict=True) if p is opened for n in notes}
            notes = [n for n in scanned if n.id in ids]
            decoding = decode_page(upstream.mapper, notes, opened, recent) if notes else ()
            for n, event in zip(notes, decoding, strict=True):
                decoded[(n.id, opened)] = event
        for i, (view, _) in enumerate(followers):
            if last <= positions[i]:
                continue  # ahead of this page already (a view rebuilt after the others)
            view.apply_batch([decoded[(n.id, personal[i])] for n in picked[i]], Tracking(upstream.name, last))
            done += len(picked[i])
            positions[i] = last
