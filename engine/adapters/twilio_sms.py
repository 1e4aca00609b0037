"""SMS through Twilio's REST API (Messages resource), with the send id as idempotency token.

POST {base}/2010-04-01/Accounts/{AccountSid}/Messages.json, HTTP Basic auth, form fields To,
From, Body and StatusCallback. Tests point ``base_url`` at a local server speaking this API.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.parse
from collections.abc import Mapping
from http import HTTPStatus
from uuid import UUID

from twilio.request_validator import RequestValidator

from engine.adapters.http_client import OutboundRefusedError, request
from engine.adapters.rate_limit import RateLimiter
from engine.application.ports import OutgoingMessage, Progress, SendResult
from engine.application.sending import send_each

#: Twilio error codes that will not succeed on retry (invalid or unreachable numbers, opted out).
PERMANENT_CODES = {21211, 21408, 21610, 21612, 21614, 30003, 30005, 30006}


#: What Twilio may report about a message (anything else is refused, never recorded).
STATUSES = frozenset(
    {
        "accepted",
        "scheduled",
        "canceled",
        "queued",
        "sending",
        "sent",
        "failed",
        "delivered",
        "undelivered",
        "receiving",
        "received",
        "read",
        "partially_delivered",
    }
)


class TwilioCallbacks:
    """Verifies Twilio's callbacks: ``X-Twilio-Signature`` is the HMAC-SHA1, under the account's
    auth token, of the full URL and the sorted form parameters (Twilio's own validator)."""

    name = "Twilio"
    header = "X-Twilio-Signature"
    statuses = STATUSES

    def __init__(self, auth_token: str) -> None:
        self.validator = RequestValidator(auth_token)

    def verify(self, url: str, params: Mapping[str, str], headers: Mapping[str, str]) -> bool:
        return bool(self.validator.validate(url, dict(params), headers.get(self.header, "")))


class TwilioSmsChannel:
    """Sends each SMS with one POST; 201 is sent, 4xx refused (unless 429), 5xx retried."""

    name = "sms"

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        from_number: str,
        base_url: str = "https://api.twilio.com",
        status_callback: str = "",
        timeout: float = 15.0,
        rate: float = 0.0,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"SMS provider URL must start with http:// or https://, got {base_url!r}")
        self.url = f"{base_url.rstrip('/')}/2010-04-01/Accounts/{account_sid}/Messages.json"
        self.auth = "Basic " + base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode()
        self.from_number = from_number
        self.status_callback = status_callback
        self.timeout = timeout
        self.limiter = RateLimiter(rate)

    def already_sent(self, send_id: UUID) -> str | None:
        return None  # a repeated request carries the same idempotency token: the provider drops it

    def send_batch(self, messages: list[OutgoingMessage], progress: Progress) -> None:
        send_each(messages, progress, self._send)

    def _send(self, m: OutgoingMessage) -> SendResult:
        wait = self.limiter.delay()
        if wait:
            time.sleep(wait)
        fields = {"To": m.to, "From": self.from_number, "Body": m.body.text.strip()}
        if self.status_callback:
            fields["StatusCallback"] = f"{self.status_callback}?send_id={m.send_id}"
        headers = {
            "Authorization": self.auth,
            "Content-Type": "application/x-www-form-urlencoded",
            "I-Twilio-Idempotency-Token": str(m.send_id),
        }
        try:
            answer = request(self.url, urllib.parse.urlencode(fields).encode(), headers, self.timeout)
        except (OSError, OutboundRefusedError) as e:
            return SendResult(m.send_id, False, reason=f"SMS provider unreachable: {e}", unreachable=True)
        try:
            detail = json.loads(answer.body or b"{}")
        except ValueError:
            detail = {}
        detail = detail if isinstance(detail, dict) else {}
        if 200 <= answer.status < 300:
            return SendResult(m.send_id, True, provider_ref=f"twilio:{detail.get('sid', '')}")
        code = int(detail.get("code") or 0)
        status = HTTPStatus(answer.status).phrase if answer.status in HTTPStatus._value2member_map_ else ""
        reason = f"SMS provider HTTP {answer.status}: {detail.get('message') or status} (code {code})"
        if answer.status == 401:
            reason += "; check HUOKE_TWILIO_ACCOUNT_SID / HUOKE_TWILIO_AUTH_TOKEN"
        permanent = code in PERMANENT_CODES or (400 <= answer.status < 500 and answer.status not in (401, 429))
        return SendResult(m.send_id, False, reason=reason, permanent=permanent)
