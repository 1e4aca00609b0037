"""The ``huoke`` command line: thin translation between a marketer's terminal and the engine."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, NoReturn
from uuid import UUID
from zoneinfo import ZoneInfo

import typer

from engine.application.delivery.links import LinkKeys
from engine.application.engine import Engine
from engine.application.erasure import erase_lead
from engine.application.leads.timeline import lead_timeline
from engine.bootstrap.helper import with_helper
from engine.bootstrap.importing import (
    IMPORT_HELPER_FROM,
    ImportReport,
    count_rows,
    find_lead,
    import_leads,
    import_lifecycle,
    import_sms_receipts,
    import_sms_replies,
)
from engine.domain.shared.errors import HuokeError
from engine.entrypoints.cli_common import (
    JsonOpt,
    app,
    consent_app,
    console,
    current_user,
    engine_for,
    events_app,
    fail,
    leads_app,
    one_line_summaries,
    opened,
    require_secrets,
    settings,
    show,
    sms_app,
    unreachable_message,
    with_progress,
)
from engine.presentation import imports, leads

# ---- journeys ----------------------------------------------------------------------------


# ---- import ------------------------------------------------------------------------------


Importer = Callable[[Engine, Path, str, ZoneInfo, Callable[[int], None]], ImportReport]


def _import_file(file: Path, as_json: bool, importer: Importer, label: str, both_cores: bool = False) -> ImportReport:
    """Run one importer over ``file`` with a progress bar (or quietly for --json); ``both_cores``:
    an embedded store's big file is worked with a helper process (``HUOKE_CORES``)."""
    if not file.is_file():
        fail(f"{file}: no such file")
    s = settings()
    engine = engine_for(s)
    rows = count_rows(file) if both_cores or not as_json else 0  # read only when needed
    if both_cores and rows >= IMPORT_HELPER_FROM:
        with_helper(engine, s, engine.clock, start=True)  # captured on both cores once it is up

    def run(advance: Callable[[int], None]) -> ImportReport:
        return importer(engine, file, s.default_phone_region, ZoneInfo(s.timezone), advance)

    try:
        report = run(lambda _: None) if as_json else with_progress(rows, label, run)
    except ValueError as e:
        fail(str(e))
    finally:
        engine.close()
    show(report.as_dict(), as_json, imports.import_report)
    if report.errors:  # one rule for every import: 1 when a row was refused (the valid ones are kept)
        raise typer.Exit(1)
    return report


@leads_app.command("import")
def leads_import(file: Path, as_json: JsonOpt = False) -> None:
    """Import leads from CSV or JSONL; valid rows are kept, bad rows listed with line numbers
    (exit 1 when any row was refused)."""
    _import_file(file, as_json, import_leads, "importing leads", both_cores=True)


@events_app.command("import")
def events_import(file: Path, as_json: JsonOpt = False) -> None:
    """Import lifecycle events (applications, approvals, funding, opt-outs…) from CSV or JSONL;
    valid rows are kept, bad rows listed with line numbers (exit 1 when any row was refused)."""
    _import_file(file, as_json, import_lifecycle, "importing events")


def _resolve_lead(engine: Engine, ref: str) -> UUID:
    """A lead id from a UUID, a phone number, an e-mail or source_channel:external_id."""
    try:
        return find_lead(engine, ref, settings().default_phone_region)
    except (HuokeError, ValueError) as e:
        fail(str(e))


@leads_app.command("erase")
def leads_erase(
    ref: Annotated[str, typer.Argument(help="lead id, phone, e-mail or source_channel:external_id")],
    reason: Annotated[str, typer.Option(help="why (the request, its reference)")],
    by: Annotated[str, typer.Option(help="who carried it out (default: you)")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Forget a person (right to erasure): every channel opted out, the contact kept only as a
    keyed hash on the suppression list, then the lead's data key deleted so every personal field
    of every event is unreadable for good. Lending and consent records stay (README)."""
    s = settings()
    with opened(s, journeys=False) as engine:
        lead_id = _resolve_lead(engine, ref)
        done = erase_lead(engine, lead_id, reason, by or current_user())
    show(done.as_dict(), as_json, leads.erasure)


@leads_app.command("show")
def leads_show(
    ref: Annotated[str, typer.Argument(help="lead id, phone, e-mail or source_channel:external_id")],
    as_json: JsonOpt = False,
) -> None:
    """A lead's timeline: every event with its reason, including why each message was sent."""
    s = settings()
    tz = ZoneInfo(s.timezone)
    with opened(s) as engine:
        engine.refresh_views()
        doc = lead_timeline(engine, _resolve_lead(engine, ref))
    show({"schema": "huoke.lead/1", **doc}, as_json, partial(leads.timeline, zone=tz))


# ---- serving ------------------------------------------------------------------------------


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8080,
) -> None:
    """HTTP: the API under /api/v1 (keys from huoke api-keys; OpenAPI at /openapi.json), the
    marketing dashboard at /dashboard (a marketer or admin key signs in), one-click unsubscribe
    links, inbound SMS replies, SMS delivery receipts."""
    import uvicorn

    from engine.adapters.request_logging import log_config
    from engine.adapters.store_watch import StoreWatch
    from engine.adapters.twilio_sms import TwilioCallbacks
    from engine.bootstrap import access_for
    from engine.entrypoints.cli_bus import bus_for
    from engine.entrypoints.http import create_app
    from engine.eventstore.coordination import pg_probe
    from engine.eventstore.recorders import refresh_pools

    s = settings()
    require_secrets(s, "serve")
    engine = engine_for(s)
    pg = s.postgres_env()
    store = StoreWatch(pg_probe(pg), on_back=refresh_pools) if pg is not None else StoreWatch()
    store.start()
    token = s.twilio_auth_token.get_secret_value()
    app = create_app(
        engine,
        LinkKeys(*s.link_keys),
        s.default_phone_region,
        TwilioCallbacks(token) if token else None,
        s.public_url,
        api=(access_for(s), s),
        asyncapi=bus_for(s).asyncapi(),
        store=store,
    )
    # The request lines in the log name no phone, e-mail or link token (adapters/request_logging).
    uvicorn.run(app, host=host, port=port, log_config=log_config(s.suppression_pepper.get_secret_value().encode()))


@consent_app.command("opt-out")
def consent_opt_out(
    ref: Annotated[str, typer.Argument(help="lead id, phone, e-mail or source_channel:external_id")],
    channel: Annotated[str, typer.Option(help="email, sms, phone or all")] = "all",
    note: Annotated[str, typer.Option(help="what the lead said, for the record")] = "asked an agent",
    agent: Annotated[str, typer.Option(help="who took the request")] = "agent",
) -> None:
    """Record an opt-out an agent took (call, branch, letter); it applies before the next send."""
    if channel not in ("email", "sms", "phone", "all"):
        fail(f"--channel must be email, sms, phone or all, not {channel!r}")
    with opened(settings()) as engine:
        engine.leads.opt_out(_resolve_lead(engine, ref), channel, f"agent {agent}", note)
    console.print(f"opted out of {channel} marketing: {ref}")


@sms_app.command("import-replies")
def sms_import_replies(file: Path, as_json: JsonOpt = False) -> None:
    """Replies from a provider export (CSV/JSONL with from, body): opt-out keywords take effect."""
    s = settings()
    with opened(s) as engine:
        report = import_sms_replies(engine, file, s.default_phone_region)
    show(report.as_dict("opt_outs"), as_json, partial(imports.provider_rows, file=file, counted="opt-out(s) recorded"))


@sms_app.command("import-receipts")
def sms_import_receipts(file: Path, as_json: JsonOpt = False) -> None:
    """Delivery receipts from a provider export (CSV/JSONL with send_id, status, error_code)."""
    with opened(settings()) as engine:
        report = import_sms_receipts(engine, file)
    show(report.as_dict("recorded"), as_json, partial(imports.provider_rows, file=file, counted="receipt(s) recorded"))


def main() -> None:
    from engine.eventstore.saving import store_unreachable

    try:
        app()
    except HuokeError as e:
        fail_plain(str(e))
    except Exception as e:
        if not store_unreachable(e):
            raise
        fail_plain(unreachable_message(settings(), e))


def fail_plain(message: str) -> NoReturn:
    """``fail`` outside the Typer app: print and exit 1."""
    try:
        fail(message)
    except typer.Exit as done:
        raise SystemExit(done.exit_code) from None


import engine.entrypoints.cli_access  # noqa: E402 - registers api-keys and audit
import engine.entrypoints.cli_bus  # noqa: E402 - registers bus run and bus docs
import engine.entrypoints.cli_journeys  # noqa: E402 - registers the journeys and tasks commands
import engine.entrypoints.cli_messages  # noqa: E402 - registers the messages and keys commands
import engine.entrypoints.cli_ops  # noqa: E402 - registers db, run, worker, status, projections
import engine.entrypoints.cli_referrals  # noqa: E402 - registers the referrals commands
import engine.entrypoints.cli_reports  # noqa: E402 - registers the report and costs commands
import engine.entrypoints.cli_screening  # noqa: E402 - registers the model and segments commands
import engine.entrypoints.cli_tasks  # noqa: E402, F401 - registers the tasks commands

# Commands other packages add (the demo: see demo/cli.py), by the ``huoke.commands`` entry point.
for command in entry_points(group="huoke.commands"):
    command.load()(app)

one_line_summaries(app)

if __name__ == "__main__":
    main()


__all__ = ["app", "main"]
