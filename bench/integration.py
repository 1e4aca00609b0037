"""Other systems feeding huoke, against the engine's own capture measured in the same run: leads
through the HTTP API (uvicorn on loopback, batches of 500) and through the bus (the real NATS
JetStream, one lead per message, pulled in batches); then the relay publishing the events out,
and how long after a burst of captures its lag is back to zero."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from demo.data import generate
from engine.adapters.clock import VirtualClock
from engine.adapters.lead_rows import LeadRow
from engine.application.delivery.links import LinkKeys
from engine.application.importing import RowError
from engine.bootstrap import access_for, bootstrap, init_database, load_journey_definitions, meta_for, relay_tracker
from engine.settings import Settings
from tests.e2e.smtp_server import serving

NATS_URL = "nats://127.0.0.1:4222"
BATCH = 500


def _rows(n: int, tz: ZoneInfo, salt: str) -> list[dict[str, Any]]:
    """``n`` valid lead rows (the demo's generator), unique to this store."""
    start = datetime(2026, 3, 2, 9, tzinfo=tz)
    rows, _ = generate(n, start, capture_days=1, sim_days=1)
    kept = []
    for i, generated in enumerate(rows):
        row = {k: v for k, v in generated.items() if v not in (None, "")} | {"external_id": f"{salt}-{i}"}
        try:
            LeadRow.model_validate(row).to_command("CN", tz, "check")
        except (ValueError, RowError):
            continue
        kept.append(row)
    return kept


def _engine(folder: Path, name: str, **overrides: Any) -> tuple[Any, Settings]:
    from bench.run import bench_settings

    settings = bench_settings(folder / name, nats_url=NATS_URL, bus_prefix=f"b{uuid.uuid4().hex[:8]}", **overrides)
    init_database(settings)
    clock = VirtualClock(datetime(2026, 3, 2, 1, tzinfo=UTC))
    return bootstrap(settings, clock, definitions=load_journey_definitions(settings)), settings


def direct_rate(folder: Path, rows: list[dict[str, Any]]) -> tuple[float, float]:
    """The engine's capture (rows validated into commands, 500 per batch): (leads/s, events/s)."""
    from bench.run import events_in  # bench.run imports this module

    engine, settings = _engine(folder, "direct")
    tz = ZoneInfo(settings.timezone)
    t0 = time.perf_counter()
    commands = [LeadRow.model_validate(r).to_command("CN", tz, f"bench:{i}") for i, r in enumerate(rows)]
    for i in range(0, len(commands), BATCH):
        engine.leads.capture_leads(commands[i : i + BATCH])
    elapsed = time.perf_counter() - t0
    events = events_in(engine)
    engine.close()
    return len(rows) / elapsed, events / elapsed


def api_rate(folder: Path, rows: list[dict[str, Any]]) -> float:
    """POST /api/v1/leads in batches of 500 to uvicorn on loopback: leads/s."""
    from engine.entrypoints.http import create_app

    engine, settings = _engine(folder, "api")
    access = access_for(settings)
    _, key = access.create_key("bench", "integrator", "bench")
    app = create_app(engine, LinkKeys("bench-link-key-0123456789abcdefghijklmnop"), "CN", api=(access, settings))
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    created = 0
    with serving(app) as base:
        t0 = time.perf_counter()
        for i in range(0, len(rows), BATCH):
            body = json.dumps(rows[i : i + BATCH]).encode()
            request = urllib.request.Request(f"{base}/api/v1/leads", body, headers, method="POST")  # noqa: S310
            with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310 - loopback
                created += json.loads(response.read())["created"]
        elapsed = time.perf_counter() - t0
    access.close()
    engine.close()
    if created != len(rows):
        raise RuntimeError(f"the API created {created} of {len(rows)} leads")
    return len(rows) / elapsed


async def _preload(js: Any, subject: str, rows: list[dict[str, Any]]) -> None:
    """Publish one lead per message, 200 at a time, each acknowledged by JetStream."""
    for i in range(0, len(rows), 200):
        chunk = rows[i : i + 200]
        acks = [
            js.publish(subject, json.dumps(r).encode(), headers={"Nats-Msg-Id": f"m{i + k}"}, timeout=30)
            for k, r in enumerate(chunk)
        ]
        await asyncio.gather(*acks)


async def _lag_after_burst(bus: Any, engine: Any, settings: Settings, burst: int) -> float:
    """A burst of direct captures while the relay runs: seconds from its end until caught up."""
    relay = asyncio.create_task(bus.relay_forever(pause=0.05))
    tz = ZoneInfo(settings.timezone)
    commands = [
        LeadRow.model_validate(r).to_command("CN", tz, f"burst:{i}") for i, r in enumerate(_rows(burst, tz, "burst"))
    ]

    def capture() -> None:
        for i in range(0, len(commands), BATCH):
            engine.leads.capture_leads(commands[i : i + BATCH])

    await asyncio.get_running_loop().run_in_executor(None, capture)
    end = time.perf_counter()
    while (await bus.db(bus.tracker.max_tracking_id, engine.leads.name) or 0) < (
        engine.leads.recorder.max_notification_id() or 0
    ):
        await asyncio.sleep(0.02)
    relay.cancel()
    return time.perf_counter() - end


def bus_rates(folder: Path, rows: list[dict[str, Any]], burst: int) -> dict[str, float]:
    """Leads through the bus (published first, then consumed: leads/s); the relay publishing the
    whole log (events/s); and seconds from the end of a burst of ``burst`` captures to zero lag."""
    import nats

    from bench.run import events_in  # bench.run imports this module
    from engine.adapters.bus_messages import Inbox
    from engine.adapters.nats_bus import Bus

    engine, settings = _engine(folder, "bus")
    p = settings.bus_prefix
    bus = Bus(settings, engine, relay_tracker(settings), Inbox(meta_for(settings)), relay=False)
    out: dict[str, float] = {}

    async def run() -> None:
        nc = await nats.connect(NATS_URL)
        js = nc.jetstream()
        await js.add_stream(name=f"{p}_in", subjects=[f"{p}.in.>"], duplicate_window=7200)
        try:
            await _preload(js, f"{p}.in.leads", rows)
            await measure()
        finally:
            for stream in (f"{p}_in", f"{p}_out", f"{p}_dlq"):
                with contextlib.suppress(nats.js.errors.NotFoundError):
                    await js.delete_stream(stream)
            await nc.close()

    async def measure() -> None:
        async with bus.broker:
            await bus.broker.start()
            t0 = time.perf_counter()
            while bus.counts["applied"] + bus.counts["dead"] < len(rows):
                await asyncio.sleep(0.02)
            out["bus_leads_per_s"] = len(rows) / (time.perf_counter() - t0)
            events = events_in(engine)
            t0 = time.perf_counter()
            while await bus.relay_once():
                pass
            out["relay_events_per_s"] = events / (time.perf_counter() - t0)
            out["lag_to_zero_s"] = await _lag_after_burst(bus, engine, settings, burst)

    try:
        asyncio.run(run())
    finally:
        bus.close()
        engine.close()
    return out


def integration_section(folder: Path, n: int) -> None:
    tz = ZoneInfo(Settings().timezone)
    rows = _rows(n, tz, "in")
    direct, direct_events = direct_rate(folder, rows)
    api = api_rate(folder, rows)
    bus = bus_rates(folder, rows, burst=min(2000, n))
    print(f"\n{f'other systems feeding huoke: {len(rows):,} leads':<72} {'rate':>12}  {'unit':<9} {'× direct':>10}")
    for what, unit, rate, base in (
        ("engine capture, rows validated in process (baseline)", "leads/s", direct, direct),
        ("HTTP API: POST /api/v1/leads, 500 per call, uvicorn on loopback", "leads/s", api, direct),
        ("bus: huoke.in.leads on NATS JetStream, one lead per message", "leads/s", bus["bus_leads_per_s"], direct),
        ("relay: every event published to huoke.out.… (vs capture's event rate)", "events/s",
         bus["relay_events_per_s"], direct_events),
    ):  # fmt: skip
        print(f"{what:<72} {rate:>12,.0f}  {unit:<9} {rate / base:>10.2f}")
    print(f"relay lag back to zero {bus['lag_to_zero_s']:.2f} s after a burst of {min(2000, n):,} captures")
