"""Moments printed in reasons are told in the lender's zone (or UTC), the zone always named."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from engine.domain.shared.durations import utc_text


def test_a_moment_kept_in_the_lenders_zone_is_printed_in_utc() -> None:
    shanghai = datetime(2026, 11, 2, 22, 40, tzinfo=ZoneInfo("Asia/Shanghai"))
    assert utc_text(shanghai) == "2026-11-02 14:40 UTC"  # printed "22:40 UTC" before
    assert utc_text(datetime(2026, 11, 2, 14, 40, tzinfo=UTC)) == "2026-11-02 14:40 UTC"


def test_a_moment_told_in_the_lenders_zone_names_the_zone() -> None:
    from engine.domain.shared.durations import zone_text

    sent = datetime(2026, 11, 2, 14, 40, tzinfo=UTC)
    assert zone_text(sent, ZoneInfo("Asia/Shanghai")) == "2026-11-02 22:40 Asia/Shanghai"
    assert zone_text(sent, UTC) == "2026-11-02 14:40 UTC"


def test_the_one_back_off_doubles_caps_and_spreads_alike_for_the_same_key() -> None:
    from datetime import timedelta

    from engine.domain.shared.durations import backoff

    first, cap = timedelta(seconds=30), timedelta(hours=1)
    assert [backoff(n, first, cap) for n in range(3)] == [first, first * 2, first * 4]
    assert backoff(500, first, cap) == cap  # no overflow, however many attempts
    spread = [backoff(3, first, cap, f"send-{n}") for n in range(50)]
    assert all(first * 8 * 0.8 <= d <= first * 8 * 1.2 for d in spread) and len(set(spread)) > 10
    assert backoff(3, first, cap, "send-1") == backoff(3, first, cap, "send-1")
