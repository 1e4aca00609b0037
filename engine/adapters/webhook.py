"""Webhook channel: POST each message's JSON body to a CRM or core-banking endpoint.

The send id travels as the Idempotency-Key header, so the receiver can drop a repeat.
"""

from __future__ import annotations

from uuid import UUID

from engine.adapters.http_client import OutboundRefusedError, request
from engine.application.ports import OutgoingMessage, Progress, SendResult
from engine.application.sending import send_each

RETRYABLE = {408, 425, 429}


class WebhookChannel:
    """Posts JSON to one URL; 2xx is sent, 4xx refused, 5xx and network errors retried."""

    name = "webhook"

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"webhook URL must start with http:// or https://, got {url!r}")
        self.url = url
        self.timeout = timeout

    def already_sent(self, send_id: UUID) -> str | None:
        return None  # the receiver de-duplicates by Idempotency-Key

    def send_batch(self, messages: list[OutgoingMessage], progress: Progress) -> None:
        send_each(messages, progress, self._post)

    def _post(self, m: OutgoingMessage) -> SendResult:
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": str(m.send_id),
            "X-Huoke-Send-Id": str(m.send_id),
        }
        try:
            answer = request(self.url, m.body.text.encode(), headers, self.timeout)
        except (OSError, OutboundRefusedError) as e:
            return SendResult(m.send_id, False, reason=f"webhook unreachable: {e}", unreachable=True)
        if 200 <= answer.status < 300:
            return SendResult(m.send_id, True, provider_ref=f"HTTP {answer.status}")
        permanent = 400 <= answer.status < 500 and answer.status not in RETRYABLE
        return SendResult(m.send_id, False, reason=f"webhook answered HTTP {answer.status}", permanent=permanent)
