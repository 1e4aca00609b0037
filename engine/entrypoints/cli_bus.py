"""``huoke bus``: the event bus process (inbound consumers and the outbound relay) and its
AsyncAPI document."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from engine.bootstrap.services import run_bus, run_webhooks
from engine.entrypoints.cli_common import (
    JsonOpt,
    app,
    console,
    emit_json,
    engine_for,
    err,
    fail,
    opened,
    require_secrets,
    say,
    settings,
    show,
)
from engine.presentation import admin

bus_app = typer.Typer(help="The NATS JetStream event bus (HUOKE_NATS_URL).", no_args_is_help=True)
app.add_typer(bus_app, name="bus")


def bus_for(s: Any, engine: Any = None, consume: bool = True, relay: bool = True) -> Any:
    from engine.adapters.bus_messages import Inbox
    from engine.adapters.nats_bus import Bus
    from engine.bootstrap import meta_for, relay_tracker

    tracker = relay_tracker(s) if engine is not None else None
    return Bus(s, engine, tracker, Inbox(meta_for(s)), consume=consume, relay=relay)


@bus_app.command("run")
def bus_run(
    consume: Annotated[bool, typer.Option(help="consume <prefix>.in.leads and <prefix>.in.events")] = True,
    relay: Annotated[bool, typer.Option(help="publish every domain event to <prefix>.out.…")] = True,
) -> None:
    """Consume leads and lifecycle events from NATS and publish huoke's events to it, until
    stopped (SIGTERM or Ctrl-C). Each message is acknowledged after the store committed it."""
    s = settings()
    if not s.nats_url:
        fail("the bus is off: set HUOKE_NATS_URL (e.g. nats://127.0.0.1:4222)")
    require_secrets(s, "bus run")
    with opened(s) as engine:
        run_bus(bus_for(s, engine, consume, relay), say)


@app.command("consume")
def consume() -> None:
    """Consume leads and lifecycle events from NATS only (huoke bus run --no-relay)."""
    bus_run(consume=True, relay=False)


@bus_app.command("docs")
def bus_docs(out: Annotated[Path | None, typer.Option(help="write the AsyncAPI JSON here")] = None) -> None:
    """The AsyncAPI document of the bus: subjects, streams and message schemas."""
    doc = bus_for(settings()).asyncapi()
    if out is None:
        console.print_json(doc)
        return
    out.write_text(doc + "\n", encoding="utf-8")
    err.print(f"wrote {out}")


hooks_app = typer.Typer(
    help="Outgoing webhooks: huoke's events POSTed, signed, to other systems.", no_args_is_help=True
)
app.add_typer(hooks_app, name="webhooks")


def _webhooks(with_engine: bool = False) -> Any:
    from engine.adapters.http_client import GuardedPoster, OutboundPolicy
    from engine.application.webhooks import Webhooks
    from engine.bootstrap import meta_for, vault_for

    s = settings()
    policy = OutboundPolicy.parse(s.outbound_allow)
    engine = engine_for(s, journeys=False) if with_engine else None
    vault = engine.leads.vault if engine is not None else vault_for(s)  # signing secrets are sealed
    return Webhooks(engine, meta_for(s), GuardedPoster(policy), vault=vault)


@hooks_app.command("add")
def hooks_add(
    name: Annotated[str, typer.Argument(help="the subscriber, e.g. crm")],
    url: Annotated[str, typer.Option(help="where to POST (https://…)")],
    events: Annotated[str, typer.Option(help="event types, comma-separated: Lead.StageChanged, Delivery.*, *")],
    from_start: Annotated[bool, typer.Option("--from-start", help="send every stored event first")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Subscribe a URL to event types; the signing secret is printed once."""
    from engine.domain.shared.errors import HuokeError

    hooks = _webhooks(with_engine=True)
    try:
        secret = hooks.add(name, url, [e.strip() for e in events.split(",") if e.strip()], from_start)
    except HuokeError as e:
        fail(str(e))
    finally:
        hooks.logs.close()
    if as_json:
        emit_json({"name": name, "url": url, "secret": secret})
        return
    console.print(
        Text.assemble("webhook ", (name, "bold"), f" → {url}\nsigning secret (shown once): {secret}"), highlight=False
    )


@hooks_app.command("list")
def hooks_list(as_json: JsonOpt = False) -> None:
    """Every subscription: URL, event types, failing tries, when it is tried next, dead letters."""
    rows = _webhooks().subscriptions()
    show({"schema": "huoke.webhooks/1", "webhooks": rows}, as_json, admin.webhooks)


@hooks_app.command("remove")
def hooks_remove(name: str) -> None:
    """Stop sending to a subscriber (its dead letters go too)."""
    from engine.domain.shared.errors import HuokeError

    try:
        _webhooks().remove(name)
    except HuokeError as e:
        fail(str(e))
    console.print(f"webhook {name} removed")


@hooks_app.command("dead")
def hooks_dead(name: str, as_json: JsonOpt = False) -> None:
    """The events a subscriber never took (after every retry), with the last error."""
    from engine.domain.shared.errors import HuokeError

    try:
        letters = _webhooks().dead(name)
    except HuokeError as e:
        fail(str(e))
    show({"schema": "huoke.webhook-dead/1", "name": name, "dead": letters}, as_json, admin.dead_letters)


@hooks_app.command("resend")
def hooks_resend(name: str) -> None:
    """Try a subscriber's dead letters once more (those it takes leave the list)."""
    from datetime import UTC, datetime

    from engine.domain.shared.errors import HuokeError

    try:
        done, failed = _webhooks().resend(name, datetime.now(UTC))
    except HuokeError as e:
        fail(str(e))
    console.print(f"{done} delivered, {failed} still failing")


@hooks_app.command("run")
def hooks_run(every: Annotated[float, typer.Option(help="seconds between passes")] = 2.0) -> None:
    """Service mode: deliver new events to every subscriber, retrying with back-off, until stopped."""
    hooks = _webhooks(with_engine=True)
    try:
        run_webhooks(hooks, every, say)
    finally:
        hooks.logs.close()
