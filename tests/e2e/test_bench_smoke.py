"""The benchmarks run against today's APIs: each measured path once, tiny (no timing asserted)."""

from __future__ import annotations

from bench.delivery import smtp_rates


def test_the_smtp_benchmark_runs_on_the_channel_api() -> None:
    rates = smtp_rates(n=30)
    assert set(rates) == {"raw_one_connection", "huoke_1_connections", "huoke_4_connections", "huoke_8_connections"}
    assert all(rate > 0 for rate in rates.values())
