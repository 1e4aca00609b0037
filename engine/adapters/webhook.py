"""Webhook channel: POST each message's JSON body to a CRM or core-banking endpoint.

The send id travels as the Idempotency-Key header, so the receiver can drop a repeat.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from uuid import UUID

from engine.application.ports import OutgoingMessage, Progress, SendResult, send_each

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
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked in __init__
            self.url,
            data=m.body.text.encode(),
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Idempotency-Key": str(m.send_id),
                "X-Huoke-Send-Id": str(m.send_id),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return SendResult(m.send_id, True, provider_ref=f"HTTP {response.status}")
        except urllib.error.HTTPError as e:
            permanent = 400 <= e.code < 500 and e.code not in RETRYABLE
            return SendResult(m.send_id, False, reason=f"webhook answered HTTP {e.code}", permanent=permanent)
        except (urllib.error.URLError, TimeoutError, OSError) as e:
            return SendResult(m.send_id, False, reason=f"webhook unreachable: {e}", unreachable=True)
