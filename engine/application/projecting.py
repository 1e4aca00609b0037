"""Drive read models in-process: follow an application's log in pages, apply in batches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from eventsourcing.application import Application
from eventsourcing.persistence import Tracking


class BatchView(Protocol):
    """A view that applies a batch of events with one tracking record, atomically."""

    def max_tracking_id(self, application_name: str) -> int | None: ...

    def apply_batch(self, events: Sequence[Any], tracking: Tracking) -> None: ...


def catch_up(view: BatchView, upstream: Application[Any], topics: Sequence[str], page: int = 1000) -> int:
    """Apply every new matching event of ``upstream`` to ``view``; return how many."""
    done = 0
    while True:
        notes = upstream.recorder.select_notifications(
            start=view.max_tracking_id(upstream.name),
            limit=page,
            topics=topics,
            inclusive_of_start=False,
        )
        if not notes:
            return done
        events = [upstream.mapper.to_domain_event(n) for n in notes]
        view.apply_batch(events, Tracking(upstream.name, notes[-1].id))
        done += len(notes)
