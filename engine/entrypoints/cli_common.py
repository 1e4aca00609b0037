"""Shared pieces of the CLI: the Typer apps, consoles, settings and error handling."""

from __future__ import annotations

import getpass
import inspect
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console, RenderableType
from rich.text import Text

from engine.application.engine import Engine
from engine.bootstrap import services
from engine.bootstrap.services import SettingsError, command_engine, first_line
from engine.domain.shared.errors import HuokeError, JourneyValidationError
from engine.eventstore.coordination import NotInitialisedError
from engine.eventstore.vault import VaultKeyError
from engine.presentation import progress
from engine.presentation.tables import Note
from engine.settings import KEY_RECIPE, Settings

app = typer.Typer(
    help="huoke 获客 — event-sourced marketing automation for lenders.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def one_line_summaries(typer_app: typer.Typer) -> None:
    """A command list shows each command's first paragraph as one flowing line (Typer's rich
    help keeps a docstring's line breaks there, which made ragged half-empty lines)."""
    for info in typer_app.registered_commands:
        if info.short_help is None:
            doc = info.help or inspect.getdoc(info.callback) or ""
            info.short_help = " ".join(doc.split("\n\n")[0].split())
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            one_line_summaries(group.typer_instance)


@app.callback()
def _private_files() -> None:
    """Everything huoke writes (stores, outbox, models, exports) is readable by its owner only:
    it holds names, phone numbers, incomes."""
    os.umask(0o077)


journeys_app = typer.Typer(help="Validate, publish, pause, draw and preview journeys.", no_args_is_help=True)
tasks_app = typer.Typer(help="Call and visit tasks that journeys created for loan officers.", no_args_is_help=True)
leads_app = typer.Typer(help="Import and inspect leads.", no_args_is_help=True)
events_app = typer.Typer(help="Import lifecycle events from the lender's systems.", no_args_is_help=True)
report_app = typer.Typer(help="Reports for marketers and analysts.", no_args_is_help=True)
projections_app = typer.Typer(help="Read models (views) of the event log.", no_args_is_help=True)
app.add_typer(journeys_app, name="journeys")
app.add_typer(leads_app, name="leads")
app.add_typer(events_app, name="events")
app.add_typer(report_app, name="report")
app.add_typer(projections_app, name="projections")
app.add_typer(tasks_app, name="tasks")
consent_app = typer.Typer(help="Consent and opt-outs.", no_args_is_help=True)
sms_app = typer.Typer(help="SMS replies from leads.", no_args_is_help=True)
app.add_typer(consent_app, name="consent")
app.add_typer(sms_app, name="sms")

# Markup is off: names, partners, file contents and error messages are printed as given (a
# lead named '[/]' once crashed `leads show`); styled lines are built as Text.
console = Console(markup=False)
err = Console(stderr=True, markup=False)
JsonOpt = Annotated[bool, typer.Option("--json", help="print a JSON document instead of tables")]


def current_user() -> str:
    """Who runs the command (recorded with what they change)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli"


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(Text.assemble(("error:", "bold red"), " ", message), soft_wrap=True, highlight=False)
    raise typer.Exit(code)


def say(line: str, kind: str = "") -> None:
    """A long-running service's line on stderr (no traceback): the store away in yellow, a
    failed pass in red."""
    if kind == "trouble":
        err.print(Text.assemble(("store unreachable:", "yellow"), f" {line}"), soft_wrap=True, highlight=False)
    elif kind == "failed":
        err.print(Text.assemble(("tick failed:", "red"), f" {line}"), soft_wrap=True)
    else:
        err.print(line, soft_wrap=True, highlight=False)


def unreachable_message(s: Settings, error: BaseException) -> str:
    """What a user reads when a command finds the store down."""
    reason = first_line(error)
    if s.database_url:
        pg = s.postgres_env() or {}
        where = f"PostgreSQL at {pg.get('POSTGRES_HOST')}:{pg.get('POSTGRES_PORT')}"
        return f"the store does not answer ({where}: {reason}); is the database running? Try again when it is"
    return f"the store cannot be read or written ({s.data_dir}: {reason}); check the folder and the disk"


def settings() -> Settings:
    try:
        return Settings()
    except ValueError as e:
        fail(f"bad HUOKE_ setting: {e}")


def require_secrets(s: Settings, command: str) -> None:
    """Commands that sign links, verify them or hash contacts refuse to start on weak secrets."""
    problems = s.secret_problems()
    if problems:
        fail(
            f"huoke {command} refuses to start:\n  "
            + "\n  ".join(problems)
            + f"\nmake one with: {KEY_RECIPE}\n(demo and tests set their own)"
        )


def engine_for(s: Settings, clock: Any = None, journeys: bool = True) -> Engine:
    """The engine for one command (see ``services.command_engine``); what stops it is said plainly."""
    try:
        return command_engine(s, clock, journeys)
    except JourneyValidationError as e:
        fail("journeys are invalid; nothing was run:\n  " + "\n  ".join(e.problems))
    except (NotInitialisedError, VaultKeyError, SettingsError) as e:
        fail(str(e))


@contextmanager
def opened(s: Settings, clock: Any = None, journeys: bool = True) -> Iterator[Engine]:
    """The engine for one command, closed when it is done; a refusal (``HuokeError``) is said
    plainly and exits 1."""
    engine = engine_for(s, clock, journeys)
    try:
        yield engine
    except (HuokeError, ValueError) as e:  # a refusal, or a reference that names nothing
        fail(str(e))
    finally:
        engine.close()


def clock_for(s: Settings) -> Any:
    try:
        return services.clock_for(s)
    except SettingsError as e:
        fail(str(e))


T = TypeVar("T")


def with_progress(total: int, label: str, run: Callable[[Callable[[int], None]], T]) -> T:
    """Run ``run(advance)`` under a progress bar on stderr counting up to ``total``."""
    return progress.counted(err, total, label, run)


def log_progress(label: str) -> Any:
    """A progress bar on stderr for work measured in log positions, shown once there is work."""
    return progress.positions(err, label)


def emit_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, ensure_ascii=False, indent=2, default=str) + "\n")


def show(doc: Any, as_json: bool, render: Callable[[Any], list[RenderableType]]) -> None:
    """Print a use case's document: as JSON (``--json``), or as ``render`` shows it to a person
    (lines of text are printed as they are: never wrapped mid-line, never highlighted; notes go
    to stderr)."""
    if as_json:
        emit_json(doc)
        return
    for shown in render(doc):
        if isinstance(shown, Note):
            err.print(shown, highlight=False, soft_wrap=True)
        elif isinstance(shown, str):
            console.print(shown, highlight=False, soft_wrap=True)
        else:
            console.print(shown)
