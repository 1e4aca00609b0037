"""The benchmarks run against today's APIs: each measured path once, tiny (no timing asserted)."""

from __future__ import annotations

from pathlib import Path

import pytest

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


def test_the_integration_benchmark_runs_the_api_the_bus_and_the_relay(tmp_path: Path) -> None:
    from zoneinfo import ZoneInfo

    from bench.integration import _rows, api_rate, bus_rates, direct_rate

    rows = _rows(60, ZoneInfo("Asia/Shanghai"), "smoke")
    assert direct_rate(tmp_path, rows)[0] > 0 and api_rate(tmp_path, rows) > 0
    rates = bus_rates(tmp_path, rows, burst=30)
    assert set(rates) == {"bus_leads_per_s", "relay_events_per_s", "lag_to_zero_s"}


def test_the_reports_benchmark_builds_its_store_and_times_every_report_and_the_page(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bench.reports import SECRETS, build_store, measure
    from bench.run import bench_settings

    settings = bench_settings(tmp_path, **{k.removeprefix("HUOKE_").lower(): v for k, v in SECRETS.items()})
    leads = build_store(settings, 80, print)
    measure(settings, leads, print, commands=False, requests=2)
    out = capsys.readouterr().out
    assert "huoke report costs (the document)" in out and "GET /dashboard over HTTP, 2 requests" in out
