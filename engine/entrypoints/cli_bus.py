"""``huoke bus``: the event bus process (inbound consumers and the outbound relay) and its
AsyncAPI document."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Annotated, Any

import typer

from engine.entrypoints.cli_common import app, console, engine_for, err, fail, require_secrets, settings

bus_app = typer.Typer(help="The NATS JetStream event bus (HUOKE_NATS_URL).", no_args_is_help=True)
app.add_typer(bus_app, name="bus")


def bus_for(s: Any, engine: Any = None, consume: bool = True, relay: bool = True) -> Any:
    from engine.bootstrap import meta_for, relay_tracker
    from engine.entrypoints.bus import Bus, Inbox

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
    engine = engine_for(s)
    bus = bus_for(s, engine, consume, relay)
    err.print(f"huoke bus: {s.nats_url} (prefix {s.bus_prefix}; consume {consume}, relay {relay})")

    async def main() -> None:
        faststream_app = bus.app()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, faststream_app.exit)
        await faststream_app.run()

    try:
        asyncio.run(main())
    finally:
        err.print(" · ".join(f"{k} {v}" for k, v in bus.counts.items()))
        bus.close()
        engine.close()


@bus_app.command("docs")
def bus_docs(out: Annotated[Path | None, typer.Option(help="write the AsyncAPI JSON here")] = None) -> None:
    """The AsyncAPI document of the bus: subjects, streams and message schemas."""
    doc = bus_for(settings()).asyncapi()
    if out is None:
        console.print_json(doc)
        return
    out.write_text(doc + "\n", encoding="utf-8")
    err.print(f"wrote {out}")
