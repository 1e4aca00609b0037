"""A channel that records messages instead of sending them (simulations and previews)."""

from __future__ import annotations

from uuid import UUID

from engine.application.ports import OutgoingMessage, SendResult


class DryRunChannel:
    """Accepts every message and keeps it in memory; nothing leaves the process."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.messages: list[OutgoingMessage] = []

    def already_sent(self, send_id: UUID) -> str | None:
        return None

    def send_batch(self, messages: list[OutgoingMessage]) -> list[SendResult]:
        self.messages.extend(messages)
        return [SendResult(m.send_id, True, provider_ref="simulated: not sent") for m in messages]
