"""Delivery benchmarks: e-mails/s through the pooled SMTP channel next to raw aiosmtplib on one
reused connection (same local aiosmtpd sink, same run); due-timer query time with 1M timers."""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiosmtplib
from aiosmtpd.controller import Controller

from engine.adapters.email_message import build_email
from engine.adapters.smtp import SmtpEmailChannel
from engine.application.ports import OutgoingMessage, RenderedMessage
from engine.application.sending import CollectedResults
from engine.bootstrap import build_view, init_database
from engine.settings import Settings
from projections.journey_index import ts


class Sink:
    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.count += 1
        return "250 OK"


def _messages(n: int) -> list[OutgoingMessage]:
    body = RenderedMessage("Alex, apply in 3 steps", "text " * 150, "<p>" + "html " * 200 + "</p>", "en", "en")
    return [OutgoingMessage(uuid.uuid4(), "email", f"lead{i}@example.com", body, "https://x/u") for i in range(n)]


async def _raw(port: int, messages: list[OutgoingMessage]) -> None:
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port)
    await client.connect()
    for m in messages:
        await client.send_message(build_email(m, "Huoke", "news@bank.example"))
    await client.quit()


def smtp_rates(n: int = 1500) -> dict[str, float]:
    from tests.e2e.smtp_server import free_port

    sink = Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        started = time.perf_counter()
        asyncio.run(_raw(port, _messages(n)))
        raw = n / (time.perf_counter() - started)
        rates = {"raw_one_connection": raw}
        for connections in (1, 4, 8):
            channel = SmtpEmailChannel(
                "127.0.0.1", port, "none", "", "", "Huoke", "news@bank.example", connections=connections
            )
            batch = _messages(n)
            started = time.perf_counter()
            for i in range(0, n, 200):
                progress = CollectedResults()
                channel.send_batch(batch[i : i + 200], progress)
                assert len(progress.results) == len(batch[i : i + 200]) and all(r.ok for r in progress.results)
            rates[f"huoke_{connections}_connections"] = n / (time.perf_counter() - started)
        return rates
    finally:
        controller.stop()


def due_timer_query(pending: int = 1_000_000) -> dict[str, float]:
    """Query time for the next 500 due timers among ``pending`` (SQLite, indexed by due time)."""
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(data_dir=Path(folder), database_url="")
        init_database(settings)
        view = build_view(settings, "journey_index")
        start = datetime(2026, 3, 1, tzinfo=UTC)
        rows = [
            (str(uuid.uuid4()), "j", "wait", ts(start + timedelta(seconds=i * 7)), i % 1024) for i in range(pending)
        ]
        with view.transaction() as c:
            c.executemany(view.q("INSERT INTO {t_due_timers} VALUES (?, ?, ?, ?, ?)"), rows)
        horizon = start + timedelta(days=1)
        timings = []
        for _ in range(20):
            t0 = time.perf_counter()
            due = view.due(horizon, limit=500)
            timings.append(time.perf_counter() - t0)
        assert len(due) == 500
        timings.sort()
        view.datastore.close()
        return {"pending": float(pending), "median_ms": timings[len(timings) // 2] * 1000, "max_ms": timings[-1] * 1000}
