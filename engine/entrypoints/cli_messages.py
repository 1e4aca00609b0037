"""CLI commands for held messages (``huoke messages review / release``) and the master key
(``huoke keys new / rotate``)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

import typer

from engine.application.delivery.operator import held_messages
from engine.bootstrap import vault_for
from engine.domain.shared.errors import HuokeError
from engine.entrypoints.cli_common import (
    JsonOpt,
    app,
    console,
    current_user,
    emit_json,
    fail,
    opened,
    settings,
    show,
)
from engine.eventstore.vault import new_master_key
from engine.presentation import admin

messages_app = typer.Typer(
    help="Messages held in doubt after a crash (HUOKE_IN_DOUBT=hold): review and release.", no_args_is_help=True
)
app.add_typer(messages_app, name="messages")


@messages_app.command("review")
def messages_review(as_json: JsonOpt = False) -> None:
    """Messages held in doubt: handed to the channel just before a crash, never confirmed. Check
    the mail server's or SMS provider's log for each, then release it."""
    with opened(settings()) as engine:
        engine.refresh_views()
        held = held_messages(engine)
    show({"schema": "huoke.held_messages/1", "messages": held}, as_json, admin.held_messages)


@messages_app.command("release")
def messages_release(
    message: Annotated[str, typer.Argument(help="the message id, or its first characters as review shows")],
    resend: Annotated[bool, typer.Option("--resend", help="it did not leave: send it again")] = False,
    was_sent: Annotated[bool, typer.Option("--was-sent", help="it did leave: record it sent, never resend")] = False,
    note: Annotated[str, typer.Option(help="what the log showed")] = "",
    by: Annotated[str, typer.Option("--by", help="who checked (default: you)")] = "",
) -> None:
    """Give a held message its outcome: resent (same Message-ID, consent checked again) or sent."""
    if resend == was_sent:
        fail("say what the log showed: --resend (it did not leave) or --was-sent (it did)")
    with opened(settings()) as engine:
        engine.refresh_views()
        found = [m["send_id"] for m in engine.schedule.review_holds() if m["send_id"].startswith(message.lower())]
        if len(found) != 1:
            fail(f"{message!r} names {len(found)} held messages: see huoke messages review")
        who = by or current_user()
        engine.deliveries.review(UUID(found[0]), engine.leads, who, note, left=was_sent)
    console.print(f"message {found[0][:8]}: " + ("recorded sent" if was_sent else "released: sends on the next run"))


keys_app = typer.Typer(help="The master key that protects each lead's personal data.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("new")
def keys_new() -> None:
    """Print a new random master key (for HUOKE_MASTER_KEY or its file)."""
    console.print(new_master_key(), highlight=False)


@keys_app.command("rotate")
def keys_rotate(as_json: JsonOpt = False) -> None:
    """Rewrap every lead's data key under the current master key. To rotate: put the old key in
    HUOKE_MASTER_KEY_OLD, the new one in HUOKE_MASTER_KEY, run this, then drop the old key."""
    s = settings()
    try:
        vault = vault_for(s)
    except HuokeError as e:
        fail(str(e))
    if vault is None:
        fail("HUOKE_ENCRYPT_PII is off: there are no data keys to rewrap")
    try:
        count = vault.rotate()
    except HuokeError as e:
        fail(str(e))
    finally:
        vault.close()
    if as_json:
        emit_json({"schema": "huoke.keys.rotated/1", "rewrapped": count})
        return
    console.print(f"{count} data key(s) rewrapped under the current master key; the old key can be retired")
