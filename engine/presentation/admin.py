"""How the operators' lists look in a terminal: the referral ledger, API keys, messages held
in doubt, webhook subscriptions and their dead letters."""

from __future__ import annotations

from typing import Any

from rich.console import RenderableType
from rich.table import Table

from engine.presentation.tables import note, plain_table


def referral_table(title: str, rows: list[dict[str, Any]]) -> Table:
    table = plain_table(title, caption="ids shortened: give any unique start of one")
    for col in ("referral", "referrer", "referee", "programme", "status", "rewards", "why"):
        table.add_column(col, overflow="fold")
    for r in rows:
        rewards = ""
        if r["referrer_reward"]:
            rewards = f"{reward_text(r['referrer_reward'])} + {reward_text(r['referee_reward'])}"
        why = "; ".join(r["reasons"]) or r["rule"]
        table.add_row(
            r["referral_id"][:8], r["referrer_id"][:8], r["referee_id"][:8], r["programme"], r["status"], rewards, why
        )
    return table


def reward_text(reward: dict[str, Any]) -> str:
    unit = {"cash": f" {reward.get('currency', '')}", "rate_discount": " pp off", "fee_waiver": " fee(s) waived"}
    return f"{reward['amount']}{unit.get(reward['kind'], '')}"


def api_keys(doc: dict[str, Any]) -> list[RenderableType]:
    """Every API key: name, role, its first characters, who made it, revoked or not."""
    table = plain_table("API keys")
    for col in ("name", "role", "key", "created", "by", "revoked"):
        table.add_column(col, overflow="fold")
    for r in doc["keys"]:
        table.add_row(
            r["name"], r["role"], r["hint"] + "…", r["created_at"][:16], r["created_by"], (r["revoked_at"] or "")[:16]
        )
    return [table]


def held_messages(doc: dict[str, Any]) -> list[RenderableType]:
    """Messages held in doubt, and how to release them."""
    held = doc["messages"]
    table = plain_table("Messages held for review")
    for col in ("message", "held (UTC)", "channel", "to", "journey / step", "template"):
        table.add_column(col, overflow="fold", no_wrap=col == "message")
    for m in held:
        table.add_row(
            m["send_id"][:8],
            m["held_at"][:16].replace("T", " "),
            m["channel"],
            m["to"] or "—",
            f"{m['journey_id']} / {m['step']}",
            m["template"],
        )
    return [table, note(f"{len(held)} message(s) held; huoke messages release ID --resend | --was-sent")]


def webhooks(doc: dict[str, Any]) -> list[RenderableType]:
    """Every webhook subscription and how its deliveries stand."""
    table = plain_table("Webhooks")
    for col in ("name", "url", "events", "failing", "next try", "dead letters"):
        table.add_column(col, overflow="fold")
    for r in doc["webhooks"]:
        table.add_row(
            r["name"], r["url"], ", ".join(r["events"]), str(r["attempts"] or ""), r["next_try"][:19], str(r["dead"])
        )
    return [table]


def dead_letters(doc: dict[str, Any]) -> list[RenderableType]:
    """The events a subscriber never took, with the last error."""
    table = plain_table(f"Dead letters of {doc['name']}")
    for col in ("event", "type", "given up at", "error"):
        table.add_column(col, overflow="fold")
    for d in doc["dead"]:
        table.add_row(d["event_id"], d["body"].get("type", ""), d["at"][:19], d["error"])
    return [table]
