"""Tracked links: clicks through ``huoke serve`` (redirect + record) against a raw FastAPI redirect
served the same way in the same run, and what rewriting links adds to rendering a message."""

from __future__ import annotations

import http.client
import re
import statistics
import threading
import time
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from bench.data import lead_commands
from demo.data import generate
from engine.adapters.clock import VirtualClock
from engine.application.delivery.links import LinkKeys
from engine.application.journeys.publishing import publish_new
from engine.bootstrap import bootstrap, init_database, load_journey_definitions, renderer_for
from engine.entrypoints.http import create_app
from tests.e2e.smtp_server import serving

BROWSER = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148 Safari/604.1"
PUBLIC = "https://huoke.example"
_CODE = re.compile(r"/l/([A-Za-z0-9_-]{31})")
SECRETS = {
    "unsubscribe_secret": "bench-link-key-0123456789abcdefghijklmn",
    "suppression_pepper": "bench-pepper-0123456789abcdefghijklmnopq",
}


def load(base: str, paths: list[str], clients: int = 8) -> tuple[float, list[float]]:
    """GET every path (each client on one kept-alive connection); (requests/s, latencies in s)."""
    host, port = base.removeprefix("http://").split(":")
    latencies: list[float] = []
    lock = threading.Lock()
    share = [paths[i::clients] for i in range(clients)]

    def client(mine: list[str]) -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        mine_latency = []
        for path in mine:
            started = time.perf_counter()
            conn.request("GET", path, headers={"User-Agent": BROWSER})
            answer = conn.getresponse()
            answer.read()
            if answer.status != 302:
                raise AssertionError(f"{path}: HTTP {answer.status}")
            mine_latency.append(time.perf_counter() - started)
        conn.close()
        with lock:
            latencies.extend(mine_latency)

    threads = [threading.Thread(target=client, args=(s,)) for s in share]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(paths) / (time.perf_counter() - started), latencies


def raw_redirect_app() -> FastAPI:
    app = FastAPI()

    @app.get("/l/{code}")
    async def redirect(code: str) -> RedirectResponse:
        return RedirectResponse(f"https://lender.example/apply?hk={code}", status_code=302)

    return app


def clicks_section(folder: Path, leads: int, step: Any, bench_settings: Any) -> None:
    where = folder / "clicks"
    settings = bench_settings(where, public_url=PUBLIC, **SECRETS)
    clock = VirtualClock(datetime(2026, 3, 2, 1, 0, tzinfo=UTC))
    init_database(settings)
    definitions = load_journey_definitions(settings)
    engine = bootstrap(settings, clock, definitions=definitions)
    publish_new(engine, definitions.journeys, renderer_for(settings).fingerprint(), "bench")
    step(f"clicks: {leads:,} leads through the bundled journeys, links tracked")
    rows, _ = generate(leads, clock.now(), capture_days=1, sim_days=1)
    commands = lead_commands(rows, ZoneInfo(settings.timezone))
    for i in range(0, len(commands), 500):
        engine.leads.capture_leads(commands[i : i + 500])
    engine.run(until=clock.now() + timedelta(days=2))
    codes = list(dict.fromkeys(_codes(settings.outbox_dir)))
    clock.advance_to(clock.now() + timedelta(hours=1))  # people click later than gateways
    paths = [f"/l/{c}" for c in codes]
    step(f"clicks: {len(paths):,} tracked links; raw FastAPI redirect, then huoke serve")
    with serving(raw_redirect_app()) as base:
        load(base, paths[:200])  # warm
        raw_rate, raw_lat = load(base, paths)
    with serving(create_app(engine, LinkKeys(SECRETS["unsubscribe_secret"]))) as base:
        rate, lat = load(base, paths)  # every click recorded (first click of each link)
        replay_rate, replay_lat = load(base, paths)  # the same clicks again: recorded once, nothing new
    step("clicks: rendering with and without link rewriting")
    plain, tracked = render_times(engine, codes)
    engine.close()
    print(
        f"\n{'tracked links (SQLite, 8 clients on kept-alive connections)':<72} {'rate':>12}  {'unit':<9} {'× raw':>10}"
    )
    print(f"{'raw FastAPI redirect (baseline)':<72} {raw_rate:>12,.0f}  {'req/s':<9} {1:>10.2f}")
    print(f"{'huoke /l/<code>: redirect + click recorded (group commit)':<72} {rate:>12,.0f}  {'clicks/s':<9} "
          f"{rate / raw_rate:>10.2f}")  # fmt: skip
    print(f"{'huoke /l/<code>: the same clicks replayed (recorded once)':<72} {replay_rate:>12,.0f}  {'clicks/s':<9} "
          f"{replay_rate / raw_rate:>10.2f}")  # fmt: skip
    for name, values in (("raw", raw_lat), ("huoke", lat), ("huoke, replayed", replay_lat)):
        q = statistics.quantiles(values, n=100)
        print(f"  latency {name}: p50 {q[49] * 1000:.1f} ms, p99 {q[98] * 1000:.1f} ms")
    print(f"rendering a message: {plain * 1e6:.0f} µs, with links rewritten {tracked * 1e6:.0f} µs "
          f"(+{(tracked / plain - 1) * 100:.0f}%)")  # fmt: skip


def render_times(engine: Any, codes: list[str], n: int = 2000) -> tuple[float, float]:
    """Seconds per message to render the welcome e-mail, and to render it and rewrite its links."""
    from uuid import uuid4

    deliveries = engine.deliveries
    lead_id = next(iter(engine.leads.lead_ids()))
    lead = engine.leads.get_lead(lead_id)
    now = engine.clock.now()
    vars_ = {"apply_url": "https://lender.example/apply", "hotline": "400-800-8888"}
    ids = [uuid4() for _ in range(n)]
    times = {}
    for label, track in (("plain", False), ("tracked", True), ("plain", False), ("tracked", True)):
        started = time.perf_counter()
        for send_id in ids:
            if track:  # as a send composes it: URLs tracked as the template outputs them
                session = deliveries.tracker.session(send_id, (deliveries.sender.unsubscribe_url,))
                session.finish(deliveries.render_for(lead, "email", "yp_quick_apply", vars_, now, session.short))
            else:
                deliveries.render_for(lead, "email", "yp_quick_apply", vars_, now)
        times[label] = (time.perf_counter() - started) / n  # the second round of each (warm)
    return times["plain"], times["tracked"]


def _codes(outbox: Path) -> list[str]:
    found = []
    for eml in sorted((outbox / "email").glob("*.eml")):
        message = message_from_bytes(eml.read_bytes(), policy=policy.default)
        body = message.get_body(("plain",))
        if isinstance(body, EmailMessage):
            found += _CODE.findall(str(body.get_content()))
    sms = outbox / "sms.jsonl"
    if sms.exists():
        found += _CODE.findall(sms.read_text(encoding="utf-8"))
    return found
