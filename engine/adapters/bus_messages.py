"""What one bus message is and what huoke answers about it: parsing a body (size and depth
limits), its id, its dead letter, the reference of each refused item, and whether it waits for a
lead that has not arrived yet."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, Field

from engine.adapters.json_input import MAX_DEPTH, JsonInputError, parse_json
from engine.application.leads.base import UNKNOWN_LEAD


def _unquoted(problem: str, item: Any) -> str:
    """A problem as a dead letter says it: the item's personal values it quotes left out."""
    if isinstance(item, dict):
        for key, value in item.items():
            if key not in REFERENCE_FIELDS and isinstance(value, str) and len(value) > 1:
                problem = problem.replace(value, "…")
    return problem


#: Largest inbound message read (a batch of a thousand leads is far smaller).
MAX_MESSAGE = 4 * 1024 * 1024


def _body(data: bytes) -> Any:
    """One message's JSON, parsed on its own with size and depth limits."""
    if len(data) > MAX_MESSAGE:
        raise JsonInputError(f"message of {len(data):,} bytes; at most {MAX_MESSAGE:,}")
    return parse_json(data, MAX_DEPTH + 1)  # +1: the array around the items


def message_id(raw: Any) -> str:
    """A message's id: its Nats-Msg-Id, else its place in the stream (stable on redelivery)."""
    headers = raw.headers or {}
    if headers.get("Nats-Msg-Id"):
        return str(headers["Nats-Msg-Id"])[:200]
    meta = raw.metadata
    return f"{meta.stream}:{meta.sequence.stream}"


def _waits_for_lead(errors: list[dict[str, str]]) -> bool:
    return all(UNKNOWN_LEAD in e["problem"] for e in errors)


def _deliveries(raw: Any) -> int:
    meta = getattr(raw, "metadata", None)
    return int(getattr(meta, "num_delivered", 1) or 1) if meta is not None else 1


def _problem(field_name: str, problem: str) -> dict[str, str]:
    return {"field": field_name, "problem": problem}


def _seconds(window: timedelta) -> float:
    return window.total_seconds()


class DeadLetter(BaseModel):
    """An inbound message (or one item of it) that could not be used, and why. Personal data is
    left out: the item is named by its reference fields, so the producer can find and fix it."""

    schema_: str = Field("huoke.dead-letter/2", alias="schema")
    subject: str
    message_id: str
    index: int | None = Field(None, description="the item of an array (from 1); none: the whole message")
    errors: list[dict[str, str]]
    item: dict[str, str] = Field(
        default_factory=dict,
        description="the item's reference fields only (source_channel, external_id, kind, application_id, ...)",
    )


#: What a dead letter keeps of an item: where it came from and which fact it was, nothing personal.
REFERENCE_FIELDS = ("source_channel", "external_id", "kind", "application_id", "lead_id", "source", "at")


def reference_of(item: Any) -> dict[str, str]:
    """The reference fields of an inbound item (never its name, phone, e-mail or profile)."""
    if not isinstance(item, dict):
        return {"type": type(item).__name__}
    found = {k: item[k] for k in REFERENCE_FIELDS if k in item and isinstance(item[k], str | int)}
    source = item.get("source")
    if isinstance(source, dict):
        found.update({f"source.{k}": source[k] for k in ("channel", "external_id") if isinstance(source.get(k), str)})
    return {k: str(v)[:200] for k, v in found.items()}


@dataclass
class Decided:
    """What one pulled batch came to (decided in the store's thread)."""

    applied: int = 0
    repeats: int = 0
    dead: list[DeadLetter] = field(default_factory=list)
    #: Messages to deliver again later (an event for a lead not captured yet).
    later: set[int] = field(default_factory=set)
    #: Message ids now applied (remembered once the dead letters are out).
    done: list[str] = field(default_factory=list)


@dataclass
class Inbox:
    """The ids of inbound messages already applied (kept in huoke's own table)."""

    meta: Any

    def seen(self, ids: list[str]) -> set[str]:
        return set(self.meta.seen_messages(ids))

    def remember(self, ids: list[str], subject: str) -> None:
        self.meta.remember_messages(ids, subject)


def bus_logger() -> logging.Logger:
    """FastStream's lines in the process's log (stderr) as plain text: its own logger writes
    colour codes even into a file."""
    logger = logging.getLogger("huoke.bus")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger
