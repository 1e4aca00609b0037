"""The event bus against the real NATS JetStream on 127.0.0.1:4222: inbound leads and events in
pull batches (bad items to the dead-letter subject, redelivery changes nothing), and the relay
publishing every domain event once, without personal data, across a crash between publishing
and recording its position. Each test has its own subject prefix and deletes its streams."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest

from engine.adapters.bus_messages import Inbox
from engine.adapters.nats_bus import Bus
from engine.application.engine import Engine
from engine.bootstrap import meta_for, relay_tracker
from engine.settings import Settings
from tests.conftest import POSTGRES_URL, MakeEngine, base_settings

NATS_URL = "nats://127.0.0.1:4222"


def lead(n: int, **changes: Any) -> dict[str, Any]:
    return {
        "source_channel": "web_form",
        "external_id": f"bus-{n}",
        "name": f"Lead {n}",
        "phone": f"138001390{n:02d}",
        "consent_sms": "true",
        **changes,
    }


@pytest.fixture
def prefix() -> Iterator[str]:
    name = f"t{uuid.uuid4().hex[:10]}"
    yield name

    async def drop() -> None:
        nc = await nats.connect(NATS_URL)
        js = nc.jetstream()
        for stream in (f"{name}_in", f"{name}_out", f"{name}_dlq"):
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.delete_stream(stream)
        await nc.close()

    asyncio.run(drop())


@pytest.fixture
def setup(make_engine: MakeEngine, tmp_path: Path, store: str, prefix: str, request: Any) -> tuple[Engine, Settings]:
    engine = make_engine()
    overrides: dict[str, Any] = {"nats_url": NATS_URL, "bus_prefix": prefix}
    if store == "postgres":
        overrides["database_url"] = f"{POSTGRES_URL}?schema={request.getfixturevalue('pg_schema')}"
    return engine, base_settings(tmp_path, **overrides)


def count_events(engine: Engine) -> int:
    """Events in the three logs (PostgreSQL's notification ids can skip a number: count rows)."""
    total = 0
    for app in (engine.leads, engine.journeys, engine.deliveries):
        position = None
        while notes := app.recorder.select_notifications(start=position, limit=1000, inclusive_of_start=False):
            total += len(notes)
            position = notes[-1].id
    return total


_OPEN_BUSES: list[Bus] = []


@pytest.fixture(autouse=True)
def close_buses() -> Iterator[None]:
    """Every bus a test made is closed after it, passed or failed: a bus left open keeps its share
    of the process's connection pool (and another test's pool would outlive its last store)."""
    yield
    while _OPEN_BUSES:
        _OPEN_BUSES.pop().close()


def make_bus(engine: Engine, settings: Settings, **kwargs: Any) -> Bus:
    bus = Bus(settings, engine, relay_tracker(settings), Inbox(meta_for(settings)), **kwargs)
    _OPEN_BUSES.append(bus)
    return bus


async def stream_messages(name: str, subject: str) -> list[dict[str, Any]]:
    """Every message a stream holds (read with an ephemeral pull consumer)."""
    nc = await nats.connect(NATS_URL)
    js = nc.jetstream()
    try:
        count = (await js.stream_info(name)).state.messages
        if not count:
            return []
        sub = await js.pull_subscribe(subject, stream=name)
        out: list[dict[str, Any]] = []
        while len(out) < count:
            for m in await sub.fetch(min(256, count - len(out)), timeout=5):
                out.append({"subject": m.subject, "id": (m.headers or {}).get("Nats-Msg-Id"), **json.loads(m.data)})
                await m.ack()
        return out
    finally:
        await nc.close()


async def run_consumer(bus: Bus, until: Any, timeout: float = 20) -> None:
    """Start the bus's broker (consumers on), wait until ``until()`` holds, stop."""
    async with bus.broker:
        await bus.broker.start()
        deadline = asyncio.get_running_loop().time() + timeout
        while not until():
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"bus did not finish: {bus.counts}")
            await asyncio.sleep(0.1)


def test_inbound_batches_keep_valid_items_dead_letter_the_rest_and_apply_each_message_once(
    setup: tuple[Engine, Settings], prefix: str
) -> None:
    engine, settings = setup
    bus = make_bus(engine, settings, relay=False)

    async def scenario() -> None:
        nc = await nats.connect(NATS_URL)
        js = nc.jetstream()
        await js.add_stream(name=f"{prefix}_in", subjects=[f"{prefix}.in.>"], duplicate_window=7200)
        leads = f"{prefix}.in.leads"
        await js.publish(
            leads, json.dumps([lead(1), lead(2), lead(3, phone="12")]).encode(), headers={"Nats-Msg-Id": "m1"}
        )
        await js.publish(leads, b"{not json", headers={"Nats-Msg-Id": "m2"})
        await js.publish(leads, json.dumps(lead(4)).encode(), headers={"Nats-Msg-Id": "m3"})
        await js.publish(leads, json.dumps([lead(1), lead(2)]).encode(), headers={"Nats-Msg-Id": "m1"})  # repeat
        event = {
            "type": "application_submitted",
            "phone": "+8613800139001",
            "application_id": "B1",
            "loan_type": "consumer",
            "amount": "30000",
        }
        await js.publish(f"{prefix}.in.events", json.dumps(event).encode())
        await nc.close()
        await run_consumer(bus, lambda: bus.counts["applied"] + bus.counts["dead"] >= 6)  # the event may wait

    asyncio.run(scenario())
    assert bus.counts == {"applied": 4, "dead": 2, "repeats": 0, "published": 0}
    engine.refresh_views()
    assert len(engine.funnel.leads({})) == 3
    assert [r["stage"] for r in engine.funnel.leads({"stage": "applied"})] == ["applied"]
    dead = asyncio.run(stream_messages(f"{prefix}_dlq", f"{prefix}.dlq.>"))
    assert sorted((d["message_id"], d["index"]) for d in dead) == [("m1", 3), ("m2", None)]
    assert all(d["subject"] == f"{prefix}.in.leads" and d["errors"] for d in dead), dead
    # The same messages delivered again (a consumer killed before it acknowledged): nothing changes.
    again = make_bus(engine, settings, relay=False)

    class Raw:  # a delivered message as nats-py hands it over
        def __init__(self, mid: str, body: Any) -> None:
            self.headers, self.data, self.acked = {"Nats-Msg-Id": mid}, json.dumps(body).encode(), False

        async def ack(self) -> None:
            self.acked = True

    asyncio.run(
        again.apply(
            f"{prefix}.in.leads",
            __import__("engine.bootstrap.importing").bootstrap.importing.import_leads,
            [Raw("m3", lead(4, name="Changed Name"))],
        )
    )
    assert again.counts["repeats"] == 1 and again.counts["applied"] == 0
    bus.close()
    again.close()


def test_the_relay_publishes_every_event_once_without_personal_data_across_a_crash(
    setup: tuple[Engine, Settings], prefix: str
) -> None:
    from zoneinfo import ZoneInfo

    from engine.adapters.lead_rows import LeadRow

    engine, settings = setup
    commands = [
        LeadRow.model_validate(lead(n)).to_command("CN", ZoneInfo("Asia/Shanghai"), f"t:{n}") for n in range(1, 6)
    ]
    engine.leads.capture_leads(commands)
    engine.run()
    logs = {
        app.name: app.recorder.max_notification_id() or 0 for app in (engine.leads, engine.journeys, engine.deliveries)
    }
    total = count_events(engine)
    bus = make_bus(engine, settings, consume=False)
    real_insert = bus.tracker.insert_tracking
    crashed = []

    def crash_once(tracking: Any) -> None:  # published, then killed before the position was recorded
        if not crashed:
            crashed.append(tracking)
            raise RuntimeError("killed")
        real_insert(tracking)

    bus.tracker.insert_tracking = crash_once

    async def scenario() -> None:
        async with bus.broker:
            await bus.broker.start()
            with pytest.raises(RuntimeError, match="killed"):
                await bus.relay_once()
            while await bus.relay_once():  # restarted: from the recorded position
                pass

    asyncio.run(scenario())
    out = asyncio.run(stream_messages(f"{prefix}_out", f"{prefix}.out.>"))
    assert len(out) == total and len({m["id"] for m in out}) == total  # each event once
    assert all(m["schema"] == "huoke.event/1" and m["id"] == f"{m['aggregate_id']}:{m['version']}" for m in out)
    captured = [m for m in out if m["type"] == "Lead.Captured"]
    assert len(captured) == 5 and all(m["subject"] == f"{prefix}.out.lead.captured" for m in captured)
    assert captured[0]["data"]["source"]["channel"] == "web_form"
    text = json.dumps(out)
    assert "13800139001" not in text and "Lead 1" not in text  # no personal data on the bus
    assert {m["log"] for m in out} == {name.lower() for name, n in logs.items() if n}
    bus.close()


@pytest.mark.slow
@pytest.mark.pg_heavy
def test_killing_the_bus_process_loses_and_duplicates_nothing(
    tmp_path: Path, prefix: str, monkeypatch: pytest.MonkeyPatch, store: str, request: Any
) -> None:
    """`huoke bus run` as its own process, killed with SIGKILL twice while 3,000 lead messages
    stream in and it relays their events out, then restarted: every lead captured once, every
    event of the logs on the out stream exactly once."""
    import signal
    import subprocess
    import time

    from engine.bootstrap import bootstrap
    from tests.e2e.test_crash_restart import command, env_for

    env = {**env_for(tmp_path), "HUOKE_NATS_URL": NATS_URL, "HUOKE_BUS_PREFIX": prefix}
    if store == "postgres":
        env["HUOKE_DATABASE_URL"] = f"{POSTGRES_URL}?schema={request.getfixturevalue('pg_schema')}"
    for key, value in env.items():
        if key.startswith("HUOKE_"):
            monkeypatch.setenv(key, value)
    subprocess.run(command("db", "init"), env=env, check=True, capture_output=True, timeout=120)
    n = 3000

    async def publish() -> None:
        nc = await nats.connect(NATS_URL)
        js = nc.jetstream()
        await js.add_stream(name=f"{prefix}_in", subjects=[f"{prefix}.in.>"], duplicate_window=7200)
        for i in range(n):
            body = json.dumps(lead(i % 100, external_id=f"kill-{i}", phone=f"+86139{i:08d}")).encode()
            await js.publish(f"{prefix}.in.leads", body, headers={"Nats-Msg-Id": f"k{i}"})
        await nc.close()

    asyncio.run(publish())
    ids = [f"k{i}" for i in range(n)]
    logs: list[Any] = []
    procs: list[subprocess.Popen[str]] = []

    def start() -> subprocess.Popen[str]:
        log = (tmp_path / f"bus{len(logs)}.log").open("w")
        logs.append(log)
        procs.append(subprocess.Popen(command("bus", "run"), env=env, stdout=log, stderr=subprocess.STDOUT, text=True))
        return procs[-1]

    def captured() -> int:
        engine = bootstrap()
        try:
            return engine.leads.recorder.max_notification_id() or 0
        finally:
            engine.close()

    def remembered() -> int:
        return len(meta_for(Settings()).seen_messages(ids))

    try:
        # Killed mid-stream, twice: first as soon as leads are being captured (anywhere in a
        # batch: between its commit and its ids being remembered, say), then only after some
        # batch was remembered, so the restart below always has work done and work left.
        for progress in (captured, remembered):
            proc = start()
            deadline = time.monotonic() + 90
            before = progress()
            while progress() < before + 40 and time.monotonic() < deadline:
                assert proc.poll() is None, (tmp_path / f"bus{len(logs) - 1}.log").read_text()[-2000:]
                time.sleep(0.05)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        assert 0 < remembered() < n  # killed with work done and work left
        proc = start()
        engine = bootstrap()
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                assert proc.poll() is None, (tmp_path / f"bus{len(logs) - 1}.log").read_text()[-2000:]
                engine.refresh_views()
                total = count_events(engine)
                out = (
                    asyncio.run(stream_messages(f"{prefix}_out", f"{prefix}.out.>"))
                    if sum(int(r["leads"]) for r in engine.funnel.stages()) == n
                    else []
                )
                if len(out) >= total and total:
                    break
                time.sleep(0.5)
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
            assert sum(int(r["leads"]) for r in engine.funnel.stages()) == n  # every message applied, none twice
            total = count_events(engine)
            out = asyncio.run(stream_messages(f"{prefix}_out", f"{prefix}.out.>"))
            assert len(out) == total and len({m["id"] for m in out}) == total  # each event once
            last = (tmp_path / f"bus{len(logs) - 1}.log").read_text()
            assert "\x1b[" not in last and "Traceback" not in last  # a plain log a person can read
        finally:
            engine.close()
    finally:
        for running in procs:  # a failed assertion leaves none behind
            if running.poll() is None:
                running.kill()
                running.wait()
        for log in logs:
            log.close()


def test_the_asyncapi_document_names_every_subject_and_message(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from engine.application.delivery.links import LinkKeys
    from engine.entrypoints.http import create_app
    from tests.helpers import TEST_LINK_KEY

    settings = base_settings(tmp_path, nats_url=NATS_URL, bus_prefix="docs")
    doc = Bus(settings, None, None, Inbox(meta_for(settings))).asyncapi()  # type: ignore[arg-type]  # no connection needed
    spec = json.loads(doc)
    assert spec["asyncapi"].startswith("3.") and {"docs.in.leads", "docs.in.events"} <= set(spec["channels"])
    assert any("docs.out" in name for name in spec["channels"]) and any("docs.dlq" in n for n in spec["channels"])
    assert "WireEvent" in json.dumps(spec["components"]) and "DeadLetter" in json.dumps(spec["components"])
    served = TestClient(create_app(None, LinkKeys(TEST_LINK_KEY), asyncapi=doc)).get("/asyncapi")  # type: ignore[arg-type]
    assert served.status_code == 200 and served.json() == spec


def test_the_relay_outlives_a_failed_round(tmp_path: Path) -> None:
    """NATS or the store unreachable for a round: the relay retries (from its recorded position)
    instead of dying while the process keeps consuming."""
    settings = base_settings(tmp_path, nats_url=NATS_URL, bus_prefix="outlives")
    bus = Bus(settings, None, None, Inbox(meta_for(settings)))  # type: ignore[arg-type]
    rounds: list[str] = []

    async def flaky() -> int:
        rounds.append("failed" if not rounds else "ok")
        if len(rounds) == 1:
            raise ConnectionError("nats: no servers available")
        return 0

    bus.relay_once = flaky  # type: ignore[method-assign]

    async def scenario() -> None:
        task = asyncio.create_task(bus.relay_forever(pause=0.001))
        while len(rounds) < 3:
            await asyncio.sleep(0.001)
        task.cancel()

    asyncio.run(scenario())
    assert rounds[:3] == ["failed", "ok", "ok"]
    bus.close()


def test_a_pull_that_runs_out_of_time_ends_with_the_error_faststream_expects(prefix: str) -> None:
    """A fetch whose time runs out before its waiting request can be sent raises nats-py's own
    TimeoutError (huoke's shim; nats-py raises a bare one there, which FastStream's pull loop does
    not catch: the loop died and its half-gathered batch came back only after the ack wait)."""
    import nats.errors

    import engine.adapters.nats_bus  # noqa: F401 - applies the shim

    async def scenario() -> None:
        nc = await nats.connect(NATS_URL)
        try:
            js = nc.jetstream()
            await js.add_stream(name=f"{prefix}_in", subjects=[f"{prefix}.in.>"])
            sub = await js.pull_subscribe(f"{prefix}.in.leads", durable=f"{prefix}-empty")
            for _ in range(3):  # nothing to fetch: a time-out, always nats-py's own
                with pytest.raises(nats.errors.TimeoutError):
                    await sub.fetch(batch=10, timeout=0.0001)
        finally:
            await nc.close()

    asyncio.run(scenario())


def test_a_hostile_message_is_dead_lettered_alone_and_the_rest_of_its_batch_is_applied(
    setup: tuple[Engine, Settings], prefix: str
) -> None:
    """Five valid leads beside a 3,000-deep array, a deep object, an oversized message and a
    non-UTF-8 one, all in one pull batch: each hostile message goes to the dead-letter subject
    with its reason and nothing personal; the five are captured; nothing is redelivered."""
    engine, settings = setup
    bus = make_bus(engine, settings, relay=False)
    hostile = {
        "deep-array": b"[" * 3000 + b"]" * 3000,
        "deep-object": json.dumps(lead(9, profile={"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {}}}}}}}}})).encode(),
        "not-utf8": b'{"name": "\xff\xfe"}',
        "huge": json.dumps(lead(8, name="x" * (5 * 1024 * 1024))).encode(),
    }

    async def scenario() -> None:
        nc = await nats.connect(NATS_URL)
        js = nc.jetstream()
        await js.add_stream(name=f"{prefix}_in", subjects=[f"{prefix}.in.>"], duplicate_window=7200)
        subject = f"{prefix}.in.leads"
        for n in range(1, 4):
            await js.publish(subject, json.dumps(lead(n)).encode(), headers={"Nats-Msg-Id": f"ok{n}"})
        for name, body in hostile.items():
            if len(body) < nc.max_payload:  # the server refuses a payload over its limit itself
                await js.publish(subject, body, headers={"Nats-Msg-Id": name})
        await js.publish(subject, json.dumps([lead(4), lead(5)]).encode(), headers={"Nats-Msg-Id": "ok45"})
        await nc.close()
        await run_consumer(bus, lambda: bus.counts["applied"] >= 5 and bus.counts["dead"] >= 3)

    asyncio.run(scenario())
    assert bus.counts["applied"] == 5
    engine.refresh_views()
    assert len(engine.funnel.leads({})) == 5
    dead = asyncio.run(stream_messages(f"{prefix}_dlq", f"{prefix}.dlq.>"))
    reasons = {d["message_id"]: d["errors"][0]["problem"] for d in dead}
    assert reasons["deep-array"] == "nested more than 9 levels deep"
    assert reasons["deep-object"] == "nested more than 9 levels deep"
    assert reasons["not-utf8"] == "not UTF-8 text"
    assert all(d["schema"] == "huoke.dead-letter/2" for d in dead)
    bus.close()


def test_a_dead_letter_names_the_item_without_its_personal_data(setup: tuple[Engine, Settings], prefix: str) -> None:
    engine, settings = setup
    bus = make_bus(engine, settings, relay=False)

    async def scenario() -> None:
        nc = await nats.connect(NATS_URL)
        js = nc.jetstream()
        await js.add_stream(name=f"{prefix}_in", subjects=[f"{prefix}.in.>"], duplicate_window=7200)
        bad = lead(1, phone="12", email="not-an-address", name="Secret Person")
        await js.publish(f"{prefix}.in.leads", json.dumps([bad]).encode(), headers={"Nats-Msg-Id": "p1"})
        await nc.close()
        await run_consumer(bus, lambda: bus.counts["dead"] >= 1)

    asyncio.run(scenario())
    [letter] = asyncio.run(stream_messages(f"{prefix}_dlq", f"{prefix}.dlq.>"))
    assert letter["item"] == {"source_channel": "web_form", "external_id": "bus-1"}
    assert "Secret Person" not in json.dumps(letter) and "not-an-address" not in json.dumps(letter)
    bus.close()
