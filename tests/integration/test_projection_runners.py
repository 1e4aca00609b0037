"""Distributed mode on PostgreSQL: eventsourcing's ProjectionRunners build the same views as
the embedded catch-up, applying each event exactly once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from engine.adapters.clock import VirtualClock
from engine.application.analytics import attribution_report, daily_report
from engine.application.projecting import matching_notifications
from engine.application.reports import funnel_report
from projections.funnel import DELIVERY_TOPICS, LEAD_TOPICS
from projections.funnel import JOURNEY_TOPICS as FUNNEL_JOURNEY_TOPICS
from projections.journey_index import TOPICS as INDEX_TOPICS
from projections.runners import last_matching_id, start_runners
from tests.conftest import MakeEngine
from tests.helpers import senior, young_pro

pytestmark = [pytest.mark.postgres, pytest.mark.pg_heavy]  # seven runners, each with its connections


@pytest.fixture
def store() -> str:
    return "postgres"


def test_runners_rebuild_the_views_from_the_logs(store: str, make_engine: MakeEngine, clock: VirtualClock) -> None:
    engine = make_engine()
    engine.leads.capture_leads([young_pro(n) for n in range(1, 8)] + [senior(n) for n in range(1, 5)])
    engine.run(until=clock.now() + timedelta(days=10))
    expected = funnel_report(engine)
    marketing = (attribution_report(engine), daily_report(engine))
    timers = engine.index.pending_count()
    engine.funnel.reset()
    engine.index.reset()
    env = engine.leads.env  # the PostgreSQL settings the engine was built with
    runners = start_runners(dict(env))
    try:
        targets = [
            (runners[0], last_matching_id(engine.leads, LEAD_TOPICS)),
            (runners[1], last_matching_id(engine.deliveries, DELIVERY_TOPICS)),
            (runners[2], last_matching_id(engine.journeys, FUNNEL_JOURNEY_TOPICS)),
            (runners[3], last_matching_id(engine.journeys, INDEX_TOPICS)),
        ]
        for runner, position in targets:
            runner.wait(position, timeout=30)
    finally:
        for runner in runners:
            runner.stop()
    assert funnel_report(engine) == expected
    assert (attribution_report(engine), daily_report(engine)) == marketing
    assert engine.index.pending_count() == timers
    # The runners apply what their subscription has read in one transaction (a tracking record
    # each), not one event per transaction.
    index_events = len(list(matching_notifications(engine.journeys.recorder, INDEX_TOPICS)))
    index: Any = engine.index
    table = f'"{index.datastore.schema}".{index.tracking_table_name}'
    [row] = index.rows(f"SELECT COUNT(*) AS n FROM {table} WHERE application_name = 'Journeys'")  # noqa: S608
    assert 1 <= row["n"] < index_events / 10
    # Restarted runners resume from tracking: one new lead is counted once, nothing twice.
    engine.leads.capture_leads([young_pro(99)])
    more = start_runners(dict(env))
    try:
        more[0].wait(last_matching_id(engine.leads, LEAD_TOPICS), timeout=30)
    finally:
        for runner in more:
            runner.stop()
    after = funnel_report(engine)
    assert after["leads"] == expected["leads"] + 1
    assert after["funnel"][0]["by_audience"]["young_professional"] == (
        expected["funnel"][0]["by_audience"]["young_professional"] + 1
    )
