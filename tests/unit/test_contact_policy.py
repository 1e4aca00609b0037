"""The contact rules as the domain decides them (``contact_policy``), without a store: quiet
hours in the lead's zone, frequency caps counting what is on record and what goes out in the same
pass, and spacing between journeys' marketing — each a wait until a moment, or a skip."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from engine.domain.delivery.contact_policy import Cap, Hold, Window, cap_hold, spacing_hold, window_hold

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAYTIME = Window(time(9), time(20))


def test_outside_the_window_a_message_waits_for_it_to_open_in_the_leads_zone() -> None:
    late = datetime(2026, 3, 2, 13, 30, tzinfo=UTC)  # 21:30 in Shanghai
    hold = window_hold(DAYTIME, SHANGHAI, late, skip=False)
    assert hold == Hold("outside contact window 09:00-20:00 Asia/Shanghai", datetime(2026, 3, 3, 9, tzinfo=SHANGHAI))
    assert window_hold(DAYTIME, SHANGHAI, late, skip=True) == Hold(hold.reason, None)  # type: ignore[union-attr]
    assert window_hold(DAYTIME, SHANGHAI, datetime(2026, 3, 2, 3, tzinfo=UTC), skip=False) is None  # 11:00 there
    assert window_hold(None, SHANGHAI, late, skip=False) is None


def test_a_cap_counts_sends_on_record_and_this_pass_and_waits_for_the_oldest_to_age_out() -> None:
    cap = Cap("sms", "marketing", 2, timedelta(days=7))
    now = datetime(2026, 3, 10, tzinfo=UTC)
    sent = [now - timedelta(days=5), now - timedelta(days=1)]
    assert cap_hold(cap, sent[:1], 0, now, skip=False) is None
    hold = cap_hold(cap, sent, 0, now, skip=False)
    assert hold == Hold("frequency cap: at most 2 marketing sms per 7d", sent[0] + timedelta(days=7))
    # One on record and one going out in this very pass: look again in a minute.
    assert cap_hold(cap, sent[1:], 1, now, skip=False) == Hold(hold.reason, now + timedelta(minutes=1))  # type: ignore[union-attr]
    assert cap_hold(None, sent, 5, now, skip=False) is None


def test_spacing_lets_one_journeys_marketing_through_per_period() -> None:
    now = datetime(2026, 3, 10, 2, tzinfo=UTC)
    last = ("young-professionals", now - timedelta(hours=3))
    hold = spacing_hold(timedelta(hours=24), last, now, SHANGHAI, skip=False)
    assert hold is not None and hold.until == last[1] + timedelta(hours=24)
    assert hold.reason == (
        "spacing: young-professionals sent this lead marketing at 2026-03-10 07:00 Asia/Shanghai; "
        "one journey's marketing per 24 h"
    )
    assert spacing_hold(timedelta(0), last, now, SHANGHAI, skip=False) is None
    assert spacing_hold(timedelta(hours=24), None, now, SHANGHAI, skip=False) is None
