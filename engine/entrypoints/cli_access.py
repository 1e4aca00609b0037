"""``huoke api-keys`` and ``huoke audit``: who may call the HTTP API, and what callers changed."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from engine.application.access import Access
from engine.domain.access.api_key import Role
from engine.domain.shared.errors import HuokeError
from engine.entrypoints.cli_common import (
    JsonOpt,
    app,
    console,
    current_user,
    emit_json,
    err,
    fail,
    settings,
    show,
)
from engine.presentation import admin
from engine.presentation.tables import plain_table

keys_app = typer.Typer(help="API keys for the HTTP API (each with a role).", no_args_is_help=True)
audit_app = typer.Typer(help="The audit trail of every state-changing API call.", no_args_is_help=True)
app.add_typer(keys_app, name="api-keys")
app.add_typer(audit_app, name="audit")


def _access() -> Access:
    from engine.bootstrap import access_for, meta_for
    from engine.eventstore.coordination import NotInitialisedError

    s = settings()
    try:
        meta_for(s).partitions()
    except NotInitialisedError as e:
        fail(str(e))
    return access_for(s)


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help=f"one of {', '.join(Role)}")],
    name: Annotated[str, typer.Option(help="who or what uses it, e.g. 'web-forms' or 'li.na'")],
    as_json: JsonOpt = False,
) -> None:
    """A new key: printed once, stored only as a hash. Agents' keys are named as the officer
    (the desk's officer id), since claiming a task takes the key's name."""
    access = _access()
    try:
        key, text = access.create_key(name, role, current_user())
    except HuokeError as e:
        fail(str(e))
    finally:
        access.close()
    if as_json:
        emit_json({"key": text, "id": str(key.id), "name": key.name, "role": str(key.role)})
        return
    console.print(
        Text.assemble("API key ", (key.name, "bold"), f" ({key.role}):\n\n  {text}\n"), highlight=False, soft_wrap=True
    )
    err.print("Shown once: store it in the calling system's secrets now. Revoke with huoke api-keys revoke NAME.")


@keys_app.command("list")
def keys_list(as_json: JsonOpt = False) -> None:
    """Every key: name, role, start of the key, who made it and when, revoked or not."""
    access = _access()
    try:
        rows = access.key_rows()
    finally:
        access.close()
    show({"schema": "huoke.api-keys/1", "keys": rows}, as_json, admin.api_keys)


@keys_app.command("revoke")
def keys_revoke(
    ref: Annotated[str, typer.Argument(help="the key's name (or id)")],
    reason: Annotated[str, typer.Option(help="why, for the record")] = "",
) -> None:
    """Revoke a key: the next call with it gets 401."""
    access = _access()
    try:
        key = access.revoke(ref, current_user(), reason)
    except HuokeError as e:
        fail(str(e))
    finally:
        access.close()
    console.print(f"revoked API key {key.name} ({key.role})")


@audit_app.command("list")
def audit_list(
    limit: Annotated[int, typer.Option(help="the latest N entries")] = 100,
    as_json: JsonOpt = False,
) -> None:
    """State-changing API calls: when, key, role, action, target, status, client address."""
    access = _access()
    try:
        entries = access.audit(limit=limit)
    finally:
        access.close()
    if as_json:
        emit_json({"schema": "huoke.audit/1", "entries": entries})
        return
    table = plain_table(f"Audit trail (latest {len(entries)})")
    for col in ("when", "key", "role", "action", "target", "status", "client"):
        table.add_column(col, overflow="fold")
    for e in entries:
        table.add_row(
            e["at"][:19], e["key"] or "(no key)", e["role"], e["action"], e["target"], str(e["status"]), e["client"]
        )
    console.print(table)
