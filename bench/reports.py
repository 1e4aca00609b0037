"""Reports and the dashboard on a large store: every report document, ``huoke report`` as a
command, and ``GET /dashboard`` over HTTP, next to a raw SQL baseline measured in the same run
(one GROUP BY over the same lead facts table, the least any funnel by channel could cost).

The store: ``n`` generated leads captured through the engine (identity, segments, consent),
a fifth of them applying and half of those funded through lifecycle events, marketing costs for
every partner, campaign and fair, then the views caught up from the log.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bench.data import lead_commands
from demo.data import MONTHLY_COSTS, add_touches, generate
from engine.adapters.clock import VirtualClock
from engine.application.leads.commands import LeadRef, RecordLifecycle
from engine.application.marketing import CostImport
from engine.application.report_catalog import REPORTS
from engine.bootstrap import access_for, bootstrap, init_database, load_journey_definitions, marketing_for
from engine.bootstrap.reports import report_document
from engine.domain.marketing.costs import CostLine, parse_period
from engine.settings import Settings
from tests.e2e.smtp_server import serving

SECRETS = {
    "HUOKE_UNSUBSCRIBE_SECRET": "bench-link-key-0123456789abcdefghijklmnop",
    "HUOKE_SUPPRESSION_PEPPER": "bench-suppression-pepper-0123456789abcdef",
}


def build_store(settings: Settings, n: int, step: Any) -> int:
    """Capture ``n`` leads (and second touches), their applications and loans, and costs."""
    tz = ZoneInfo(settings.timezone)
    start = datetime(2026, 3, 2, 9, tzinfo=tz)
    rows, _ = generate(n, start, capture_days=30, sim_days=31)
    add_touches(rows)
    commands = lead_commands(rows, tz)
    commands.sort(key=lambda c: c.captured_at or start)
    init_database(settings)
    engine = bootstrap(settings, VirtualClock(start.astimezone(UTC)), definitions=load_journey_definitions(settings))
    for i in range(0, len(commands), 1000):
        engine.leads.capture_leads(commands[i : i + 1000])
        if (i // 1000) % 10 == 9:
            step(f"captured {i + 1000:,} of {len(commands):,} leads")
    facts = []
    for k, c in enumerate(commands):
        if k % 5:
            continue
        at = (c.captured_at or start) + timedelta(days=2)
        ref = LeadRef(source_channel=c.source["channel"], external_id=c.source["external_id"])
        amount = c.interest.get("amount") or "100000"
        loan = c.interest.get("loan_type") or "consumer"
        facts.append(RecordLifecycle(ref, "application_submitted", at, f"B{k}", loan, amount))
        if k % 10 == 0:
            facts.append(RecordLifecycle(ref, "application_approved", at + timedelta(days=1), f"B{k}", "", amount))
            facts.append(RecordLifecycle(ref, "loan_funded", at + timedelta(days=3), f"B{k}", loan, amount))
    for i in range(0, len(facts), 2000):
        engine.leads.record_lifecycle(facts[i : i + 2000])
    step(f"recorded {len(facts):,} lifecycle events; catching the views up")
    engine.refresh_views()
    marketing = marketing_for(settings)
    scale = Decimal(max(1, n // 3000))  # the demo's fees are for 3,000 leads
    months = ("2026-03", "2026-04")
    lines = [CostLine(k, kind, name, parse_period(month), Decimal(amount) * scale, "CNY")
             for k, (kind, name, amount) in enumerate(MONTHLY_COSTS, 2) for month in months]  # fmt: skip
    marketing.record_costs(lines, "bench", CostImport("costs"))
    marketing.close()
    engine.close()
    return len(commands)


def raw_group_by(settings: Settings) -> float:
    """Seconds for one plain GROUP BY over the lead facts (sqlite3, no huoke code)."""
    import sqlite3

    db = sqlite3.connect(settings.data_dir / "funnel.db")
    started = time.perf_counter()
    db.execute(
        "SELECT first_channel, COUNT(*), COUNT(applied_at), COUNT(funded_at), SUM(funded_volume) "
        "FROM lead_facts GROUP BY first_channel"
    ).fetchall()
    elapsed = time.perf_counter() - started
    db.close()
    return elapsed


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def reports_section(folder: Path, n: int, step: Any, bench_settings: Any) -> None:
    where = folder / "reports"
    settings = bench_settings(where, **{k.removeprefix("HUOKE_").lower(): v for k, v in SECRETS.items()})
    step(f"reports: building a store of {n:,} leads")
    t0 = time.perf_counter()
    leads = build_store(settings, n, step)
    step(f"store built in {time.perf_counter() - t0:.0f}s; timing reports")
    measure(settings, leads, step)


def measure(settings: Settings, leads: int, step: Any, commands: bool = True, requests: int = 40) -> None:
    """Time every report, each report command (``commands``) and the dashboard (``requests``
    page loads) on the store of ``settings``."""
    raw = statistics.median(raw_group_by(settings) for _ in range(5))
    engine = bootstrap(settings, definitions=load_journey_definitions(settings))
    engine.owns_views = False
    timings: dict[str, float] = {}
    for name in REPORTS:
        runs = []
        for _ in range(3):
            started = time.perf_counter()
            report_document(name, engine, settings)
            runs.append(time.perf_counter() - started)
        timings[name] = statistics.median(runs)
    print(f"\n{f'reports over {leads:,} leads (median of 3, in process)':<72} {'seconds':>12}  {'':<9} {'× raw':>10}")
    print(f"{'raw sqlite3: one GROUP BY channel over the lead facts (baseline)':<72} {raw:>12.3f}  {'s':<9} {1:>10.1f}")
    for name, seconds in timings.items():  # type: ignore[assignment]
        print(f"{'huoke report ' + name + ' (the document)':<72} {seconds:>12.3f}  {'s':<9} {seconds / raw:>10.1f}")
    step("a report as of a past day: its views rebuilt from the event log, then reused")
    past = datetime(2026, 3, 16, tzinfo=ZoneInfo(settings.timezone))
    for what in ("funnel view rebuilt from the log", "the same moment again: view kept"):
        started = time.perf_counter()
        report_document("attribution", engine, settings, as_of=past)
        as_of = time.perf_counter() - started
        print(f"{'huoke report attribution --as-of 2026-03-16 (' + what + ')':<72} "
              f"{as_of:>12.3f}  {'s':<9} {as_of / raw:>10.1f}")  # fmt: skip
    if commands:
        command_timings(settings)
    dashboard_timings(settings, engine, step, requests)
    engine.close()


def command_timings(settings: Settings) -> None:
    """Each report as a command, against the interpreter and the CLI starting."""
    env = {**os.environ, **SECRETS, "HUOKE_DATA_DIR": str(settings.data_dir), "HUOKE_DATABASE_URL": ""}
    env |= {"HUOKE_JOURNEYS_DIR": str(settings.journeys_dir), "HUOKE_TEMPLATES_DIR": str(settings.templates_dir)}
    huoke = str(Path(sys.executable).parent / "huoke")
    started = time.perf_counter()
    subprocess.run([huoke, "--help"], env=env, capture_output=True, check=True)  # noqa: S603
    startup = time.perf_counter() - started
    print(f"\n{'each report as a command, wall time (one run each)':<72} {'seconds':>12}  {'':<9} {'× start':>10}")
    print(
        f"{'huoke --help: the interpreter and the CLI starting (baseline)':<72} {startup:>12.2f}  {'s':<9} {1:>10.2f}"
    )
    for name in REPORTS:
        started = time.perf_counter()
        subprocess.run([huoke, "report", name, "--json"], env=env, capture_output=True, check=True)  # noqa: S603
        seconds = time.perf_counter() - started
        print(f"{'huoke report ' + name + ' --json':<72} {seconds:>12.2f}  {'s':<9} {seconds / startup:>10.2f}")


def dashboard_timings(settings: Settings, engine: Any, step: Any, requests: int = 40) -> None:
    """GET /dashboard over HTTP from a real server: ``requests`` page loads with varied filters."""
    from engine.application.delivery.links import LinkKeys
    from engine.entrypoints.http import create_app

    access = access_for(settings)
    _, key = access.create_key(f"bench-{time.monotonic_ns()}", "marketer", "bench")
    app = create_app(engine, LinkKeys(SECRETS["HUOKE_UNSUBSCRIBE_SECRET"]), api=(access, settings))
    with serving(app) as base:
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        form = f"key={key}".encode()
        sign_in = urllib.request.Request(base + "/dashboard/sign-in", data=form, headers={"Origin": base})  # noqa: S310
        opener.open(sign_in, timeout=60).read()  # from huoke's own page, as a browser posts it
        filters = ["", "?touch=last", "?channel=web_form", "?since=2026-03-10&until=2026-03-20",
                   "?channel=car_dealer&touch=last", "?journey=young-professionals", "?since=2026-03-25"]  # fmt: skip
        opener.open(base + "/dashboard", timeout=60).read()  # warm
        step(f"dashboard: {requests} requests")
        times = []
        for i in range(requests):
            started = time.perf_counter()
            opener.open(base + "/dashboard" + filters[i % len(filters)], timeout=60).read()
            times.append(time.perf_counter() - started)
        p50, p95 = percentile(times, 0.5) * 1000, percentile(times, 0.95) * 1000
        print(f"\nGET /dashboard over HTTP, {requests} requests, 7 kinds of filter: p50 {p50:.0f} ms, p95 {p95:.0f} ms")
    access.close()
