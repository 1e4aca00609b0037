"""Follow an application's notification log in pages: the shared loop of every reactor and view.

Pages are read by position only and filtered by topic in Python, and the position recorded is
the last notification *read*, not the last one that matched. (Filtering by topic in SQL and
tracking the last match makes every later read rescan all the non-matching events after it:
measured here as the demo's largest cost before this change.)
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from eventsourcing.application import Application
from eventsourcing.persistence import ApplicationRecorder, Notification, Tracking


@dataclass(frozen=True)
class Page:
    """The matching notifications of one page, and the position to record after it."""

    notes: list[Notification]
    last: int


def next_page(recorder: ApplicationRecorder, position: int | None, topics: Collection[str], limit: int) -> Page | None:
    """The next ``limit`` notifications after ``position``, keeping those with ``topics``; None at the end."""
    scanned = recorder.select_notifications(start=position, limit=limit, inclusive_of_start=False)
    if not scanned:
        return None
    wanted = set(topics)
    return Page([n for n in scanned if n.topic in wanted], scanned[-1].id)


class BatchView(Protocol):
    """A view that applies a batch of events with one tracking record, atomically."""

    def max_tracking_id(self, application_name: str) -> int | None: ...

    def apply_batch(self, events: Sequence[Any], tracking: Tracking) -> None: ...


def catch_up(view: BatchView, upstream: Application[Any], topics: Sequence[str], page: int = 2000) -> int:
    """Apply every new matching event of ``upstream`` to ``view``; return how many."""
    done = 0
    while True:
        found = next_page(upstream.recorder, view.max_tracking_id(upstream.name), topics, page)
        if found is None:
            return done
        events = [upstream.mapper.to_domain_event(n) for n in found.notes]
        view.apply_batch(events, Tracking(upstream.name, found.last))
        done += len(events)
