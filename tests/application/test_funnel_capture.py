"""The funnel counts a captured lead once, under the audience of its first screening (recorded
with the capture), live and rebuilt from the log alike."""

from __future__ import annotations

from typing import Any

from tests.conftest import MakeEngine
from tests.helpers import senior, young_pro


def counts(engine: Any) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], int]]:
    """(leads that reached each stage, leads now at each stage), by stage and audience."""
    reached = {(r["stage"], r["audience"]): int(r["leads"]) for r in engine.funnel.reached()}
    now: dict[tuple[str, str], int] = {}
    for r in engine.funnel.stages():
        key = (r["stage"], r["audience"])
        now[key] = now.get(key, 0) + int(r["leads"])
    return reached, now


def test_a_captured_lead_is_counted_once_under_its_first_screenings_audience(make_engine: MakeEngine) -> None:
    engine = make_engine()
    engine.leads.capture_leads([young_pro(i) for i in range(3)] + [senior(i) for i in range(2)])
    engine.refresh_views()
    live = counts(engine)
    audiences = {audience for _, audience in live[0]}
    assert len(audiences) == 2 and "general" not in audiences  # each in its screened audience
    assert sorted(live[0].values()) == [2, 3] and live[0] == live[1]
    # A second touch of a known person (another source, same phone) is not a new lead.
    again = young_pro(1, source={"channel": "car_dealer", "external_id": "D1"})
    [outcome] = engine.leads.capture_leads([again])
    assert not outcome.created
    engine.refresh_views()
    assert counts(engine) == live
    engine.rebuild_views(["funnel"])
    assert counts(engine) == live
