"""The per-channel rate limit, on a fake monotonic clock (no wall-clock timing in tests)."""

from __future__ import annotations

from engine.adapters.rate_limit import RateLimiter


def test_keeps_to_the_rate_after_the_burst() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=10, burst=2, clock=lambda: now[0])
    assert [limiter.delay() for _ in range(2)] == [0.0, 0.0]  # the burst
    assert round(limiter.delay(), 3) == 0.1  # then one every 100 ms
    now[0] += 1.0  # a second later the bucket has refilled
    assert limiter.delay() == 0.0


def test_zero_means_no_limit() -> None:
    limiter = RateLimiter(rate=0)
    assert all(limiter.delay() == 0.0 for _ in range(1000))
