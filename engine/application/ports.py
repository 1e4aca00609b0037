"""Ports: what the use cases need from the outside world, as Protocols."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from engine.domain.scoring import Scored


class Clock(Protocol):
    """The current time; virtual in tests, the demo and backtests."""

    def now(self) -> datetime: ...


@dataclass(frozen=True)
class RenderedMessage:
    """A message rendered for one lead: which template file variant and locale were used."""

    subject: str | None
    text: str
    html: str | None
    locale: str
    variant: str


class RenderError(Exception):
    """Raised when a template is missing or cannot render for this lead."""


class Renderer(Protocol):
    """Turns a template name and a lead's context into message parts."""

    def render(
        self, channel: str, template: str, audience: str, locale: str, context: dict[str, Any]
    ) -> RenderedMessage: ...


@dataclass(frozen=True)
class OutgoingMessage:
    """One message ready for a channel; ``send_id`` is its idempotency key everywhere."""

    send_id: UUID
    channel: str
    to: str
    body: RenderedMessage
    unsubscribe_url: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SendResult:
    """What a channel said about one message."""

    send_id: UUID
    ok: bool
    provider_ref: str = ""
    reason: str = ""
    permanent: bool = False
    bounced: bool = False  # the address itself was refused: stop using it


class Channel(Protocol):
    """Sends messages of one kind (e-mail or SMS) in batches."""

    name: str

    def send_batch(self, messages: list[OutgoingMessage]) -> list[SendResult]: ...

    def already_sent(self, send_id: UUID) -> str | None:
        """The provider reference if this send id is known to have left, else None."""
        ...


class Scorer(Protocol):
    """A loaded scoring model: rows of model inputs in, one result per row out (in batches)."""

    @property
    def features(self) -> list[str]: ...

    def score_many(self, rows: Sequence[dict[str, Any]]) -> list[Scored]: ...


class ModelStore(Protocol):
    """Where model files live; refuses a file whose SHA-256 is not the registered one."""

    def load(self, kind: str, file_name: str, sha256: str) -> Scorer: ...
