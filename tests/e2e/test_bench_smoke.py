"""The benchmarks run against today's APIs: each measured path once, tiny (no timing asserted)."""

from __future__ import annotations

from pathlib import Path

from bench.delivery import smtp_rates
from bench.run import capture_rates


def test_the_smtp_benchmark_runs_on_the_channel_api() -> None:
    rates = smtp_rates(n=30)
    assert set(rates) == {"raw_one_connection", "huoke_1_connections", "huoke_4_connections", "huoke_8_connections"}
    assert all(rate > 0 for rate in rates.values())


def test_the_encryption_benchmark_runs_on_todays_capture_and_lookup(tmp_path: Path) -> None:
    for encrypt in (False, True):
        leads_per_s, lookups_per_s = capture_rates(tmp_path, 40, encrypt)
        assert leads_per_s > 0 and lookups_per_s > 0
