"""Distributed mode: each view follows its upstream applications in its own runner threads.

eventsourcing's ProjectionRunner subscribes to an application's notification log (PostgreSQL
LISTEN/NOTIFY) and applies events with their tracking record, exactly once (here in batches of
what the subscription has already read); the runners resume from the view's tracking after a
restart. SQLite cannot be subscribed to: embedded
mode catches views up in-process instead (engine.application.projecting.catch_up_together).
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Sequence
from threading import Event
from time import monotonic
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from eventsourcing.application import Application
from eventsourcing.projection import ApplicationSubscription, ProjectionRunner

from engine.application.projecting import matching_notifications
from engine.eventstore.values import StoreApplication
from projections.delivery_schedule import DeliverySchedulePostgres, DeliveryScheduleProjection
from projections.funnel import (
    FunnelCountsPostgres,
    FunnelDeliveriesProjection,
    FunnelJourneysProjection,
    FunnelProjection,
)
from projections.journey_index import JourneyIndexPostgres, JourneyIndexProjection
from projections.referral_ledger import ReferralLedgerPostgres, ReferralLedgerProjection
from projections.screening import ScreeningPostgres, ScreeningProjection

log = logging.getLogger(__name__)


class LeadsLog(StoreApplication):
    """Read-only handle on the Leads application's log (same name, so the same tables)."""

    name = "Leads"


class JourneysLog(StoreApplication):
    name = "Journeys"


class DeliveriesLog(StoreApplication):
    name = "Deliveries"


class ReferralsLog(StoreApplication):
    name = "Referrals"


#: (upstream log, projection, view class) for every runner of every view.
RUNNERS: Sequence[tuple[type[Application[UUID]], type[Any], type[Any]]] = (
    (LeadsLog, FunnelProjection, FunnelCountsPostgres),
    (DeliveriesLog, FunnelDeliveriesProjection, FunnelCountsPostgres),
    (JourneysLog, FunnelJourneysProjection, FunnelCountsPostgres),
    (JourneysLog, JourneyIndexProjection, JourneyIndexPostgres),
    (DeliveriesLog, DeliveryScheduleProjection, DeliverySchedulePostgres),
    (LeadsLog, ScreeningProjection, ScreeningPostgres),
    (ReferralsLog, ReferralLedgerProjection, ReferralLedgerPostgres),
)


#: The most events a runner applies in one transaction.
BATCH = 500
#: How long a runner gathers what arrives after an event before it applies them together: the
#: workers commit a few events at a time, and each view applied each commit's in a transaction
#: of its own (the runner used as much CPU as a worker). A view lags its log by up to this more.
GATHER = 0.05
GATHER_POLL = 0.005


def _ready(subscription: ApplicationSubscription[Any]) -> bool:
    """Whether the subscription holds another notification already read (next() won't wait)."""
    pulled = subscription.subscription
    return pulled._notifications_index < len(pulled._notifications) or not pulled._notifications_queue.empty()  # type: ignore[attr-defined]


class BatchingProjectionRunner(ProjectionRunner[Any, Any]):
    """eventsourcing's runner applies one event per transaction; this one applies every event its
    subscription has already read (up to ``BATCH``) in one, with the last one's tracking record:
    a burst of a worker's batch costs one commit per view, not one per event, and what waits for
    the next notification is applied as soon as it arrives, as before."""

    @staticmethod
    def _process_events_loop(
        subscription: ApplicationSubscription[Any],
        projection: Any,
        is_stopping: Event,
        runner: weakref.ReferenceType[ProjectionRunner[Any, Any]],
    ) -> None:
        try:
            for first in subscription:
                batch = [first]
                gather_until = monotonic() + GATHER
                while len(batch) < BATCH:
                    if not _ready(subscription):
                        if monotonic() >= gather_until or is_stopping.is_set():
                            break
                        is_stopping.wait(GATHER_POLL)
                        continue
                    try:
                        batch.append(next(subscription))
                    except StopIteration:
                        break
                projection.process_events(batch)
        except BaseException as e:
            ran = runner()
            if ran is not None:
                ran._thread_error = e
            else:
                log.error("a projection runner was deleted before its error could be raised", exc_info=e)
        finally:
            is_stopping.set()


def start_runners(env: dict[str, str], timezone: str = "UTC") -> list[ProjectionRunner[Any, Any]]:
    """Start one runner per (view, upstream); each runs in its own threads until stopped. Views
    that count by day count the lender's days (``timezone``)."""
    zone = ZoneInfo(timezone)
    return [
        BatchingProjectionRunner(
            application_class=app,
            projection_class=projection,
            view_class=type(view.__name__, (view,), {"timezone": zone}) if hasattr(view, "timezone") else view,
            env=env,
        )
        for app, projection, view in RUNNERS
    ]


def last_matching_id(app: Application[Any], topics: Sequence[str]) -> int:
    """The position of the newest notification a runner with ``topics`` will apply."""
    last = 0
    for note in matching_notifications(app.recorder, topics):
        last = note.id
    return last


def view_lags(engine: Any, page: int = 5000) -> list[dict[str, Any]]:
    """How far each view is behind each log it follows: the events it reads (its topics) not yet
    applied. A view that follows a few kinds of event is settled when it has applied the last of
    those, however far the log's newest notification is past it."""
    rows = []
    for view_name, view in engine.views.items():
        for log_name, topics in view.feeds:
            app = getattr(engine, log_name)
            applied = view.max_tracking_id(app.name) or 0
            head, behind = applied, 0
            for note in matching_notifications(app.recorder, topics, start=applied, page=page):
                head, behind = note.id, behind + 1
            rows.append({"view": view_name, "log": app.name, "applied": applied, "head": head, "behind": behind})
    return rows
