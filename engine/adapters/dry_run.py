"""A channel that records messages instead of sending them (simulations and previews)."""

from __future__ import annotations

from uuid import UUID

from engine.application.ports import OutgoingMessage, Progress, SendResult
from engine.application.sending import send_each


class DryRunChannel:
    """Accepts every message and keeps it in memory; nothing leaves the process."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.messages: list[OutgoingMessage] = []

    def already_sent(self, send_id: UUID) -> str | None:
        return None

    def send_batch(self, messages: list[OutgoingMessage], progress: Progress) -> None:
        send_each(messages, progress, self._record, together=64)

    def _record(self, m: OutgoingMessage) -> SendResult:
        self.messages.append(m)
        return SendResult(m.send_id, True, provider_ref="simulated: not sent")
