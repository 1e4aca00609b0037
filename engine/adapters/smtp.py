"""E-mail through an SMTP server with aiosmtplib: one reused connection per batch."""

from __future__ import annotations

import asyncio
import logging
from uuid import UUID

import aiosmtplib

from engine.adapters.email_message import build_email
from engine.application.ports import OutgoingMessage, SendResult

log = logging.getLogger(__name__)

_TRANSIENT = (
    aiosmtplib.SMTPServerDisconnected,
    aiosmtplib.SMTPConnectError,
    aiosmtplib.SMTPTimeoutError,
    ConnectionError,
    OSError,
)


class SmtpEmailChannel:
    """Sends a batch over one connection; reconnects once per dropped connection."""

    name = "email"

    def __init__(
        self,
        host: str,
        port: int,
        tls: str,
        username: str,
        password: str,
        sender_name: str,
        sender_email: str,
        timeout: float = 30.0,
    ) -> None:
        self.host, self.port, self.tls = host, port, tls
        self.username, self.password = username, password
        self.sender_name, self.sender_email = sender_name, sender_email
        self.timeout = timeout

    def already_sent(self, send_id: UUID) -> str | None:
        # An SMTP server cannot be asked; an in-doubt send is repeated with the same
        # Message-ID so receiving systems can drop the duplicate.
        return None

    def send_batch(self, messages: list[OutgoingMessage]) -> list[SendResult]:
        return asyncio.run(self._send_all(messages))

    def _client(self) -> aiosmtplib.SMTP:
        return aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            timeout=self.timeout,
            use_tls=self.tls == "tls",
            start_tls=self.tls == "starttls",
            username=self.username or None,
            password=self.password or None,
        )

    async def _send_all(self, messages: list[OutgoingMessage]) -> list[SendResult]:
        results: list[SendResult] = []
        client: aiosmtplib.SMTP | None = None
        try:
            for n, m in enumerate(messages):
                if client is None or not client.is_connected:
                    try:
                        client = self._client()
                        await client.connect()
                    except aiosmtplib.SMTPAuthenticationError as e:
                        reason = f"SMTP authentication failed ({e.code}): check HUOKE_SMTP_USERNAME/PASSWORD"
                        log.error(reason)
                        return results + [SendResult(x.send_id, False, reason=reason) for x in messages[n:]]
                    except _TRANSIENT as e:
                        reason = f"cannot reach SMTP server {self.host}:{self.port}: {e}"
                        return results + [SendResult(x.send_id, False, reason=reason) for x in messages[n:]]
                results.append(await self._send_one(client, m))
        finally:
            if client is not None and client.is_connected:
                try:
                    await client.quit()
                except aiosmtplib.SMTPException:
                    client.close()
        return results

    async def _send_one(self, client: aiosmtplib.SMTP, m: OutgoingMessage) -> SendResult:
        msg = build_email(m, self.sender_name, self.sender_email)
        try:
            refused, reply = await client.send_message(msg)
        except aiosmtplib.SMTPRecipientsRefused as e:
            codes = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in e.recipients)
            permanent = all(r.code >= 500 for r in e.recipients)
            return SendResult(m.send_id, False, reason=f"recipient refused: {codes}", permanent=permanent)
        except aiosmtplib.SMTPResponseException as e:
            return SendResult(m.send_id, False, reason=f"SMTP {e.code} {e.message}", permanent=e.code >= 500)
        except _TRANSIENT as e:
            return SendResult(m.send_id, False, reason=f"connection lost: {e}")
        if refused:
            codes = "; ".join(f"{r}: {c[0]} {c[1]}" for r, c in refused.items())
            return SendResult(m.send_id, False, reason=f"recipient refused: {codes}", permanent=True)
        return SendResult(m.send_id, True, provider_ref=reply)
