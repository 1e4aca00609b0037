"""E-mail through an SMTP server with aiosmtplib: a small pool of reused connections.

Each batch is spread over ``connections`` concurrent connections (one reused connection per
worker); 4xx and connection errors are transient (the delivery is retried later with back-off),
5xx are permanent, and a refused recipient is reported as a bounce. An authentication failure
halts the channel for this process and says so loudly; nothing is lost (all stay deferred).
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.parse
import zlib
from uuid import UUID

import aiosmtplib

from engine.adapters.email_message import build_email
from engine.adapters.email_message import message_id as build_message_id
from engine.adapters.http_client import OutboundRefusedError, request
from engine.adapters.rate_limit import RateLimiter
from engine.application.ports import OutgoingMessage, Progress, SendResult

log = logging.getLogger(__name__)

_TRANSIENT = (
    aiosmtplib.SMTPServerDisconnected,
    aiosmtplib.SMTPConnectError,
    aiosmtplib.SMTPTimeoutError,
    ConnectionError,
    OSError,
)


class SmtpEmailChannel:
    """Sends batches over a pool of connections, at most ``rate`` messages a second (0: no limit)."""

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
        connections: int = 4,
        rate: float = 0.0,
        reconcile_url: str = "",
    ) -> None:
        self.host, self.port, self.tls = host, port, tls
        self.username, self.password = username, password
        self.sender_name, self.sender_email = sender_name, sender_email
        self.timeout = timeout
        self.connections = max(connections, 1)
        self.limiter = RateLimiter(rate, burst=self.connections)
        self.halted = ""
        self.reconcile_url = reconcile_url.rstrip("/")

    def already_sent(self, send_id: UUID) -> str | None:
        """Whether an in-doubt message reached the server, by its Message-ID.

        Plain SMTP cannot be asked, so this needs a server with a search API: Mailpit's
        (``HUOKE_SMTP_RECONCILE_URL``). Without one an in-doubt message is sent again with the
        same Message-ID, which receiving systems use to drop the duplicate.
        """
        if not self.reconcile_url:
            return None
        message_id = build_message_id(send_id, self.sender_email).strip("<>")
        query = urllib.parse.urlencode({"query": f"message-id:{message_id}"})
        try:
            answer = request(f"{self.reconcile_url}/api/v1/search?{query}", None, {"Accept": "application/json"})
            if answer.status != 200:
                raise ValueError(f"the search API answered HTTP {answer.status}")
            found = int(json.loads(answer.body).get("messages_count", 0))
        except (OSError, ValueError, OutboundRefusedError) as e:
            raise ConnectionError(
                f"cannot reconcile in-doubt e-mail {message_id} with {self.reconcile_url}: {e}"
            ) from e
        return f"found by Message-ID at {self.reconcile_url}" if found else None

    def send_batch(self, messages: list[OutgoingMessage], progress: Progress) -> None:
        if self.halted:
            for m in messages:
                progress.sent(SendResult(m.send_id, False, reason=self.halted, unreachable=True))
            return
        asyncio.run(self._send_all(messages, progress))

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

    async def _send_all(self, messages: list[OutgoingMessage], progress: Progress) -> None:
        # One recipient's messages share a lane, in the order given: they arrive in that order.
        lanes: list[list[OutgoingMessage]] = [[] for _ in range(self.connections)]
        for m in messages:
            lanes[zlib.crc32(m.to.lower().encode()) % self.connections].append(m)
        # A lane that cannot record (the store went away) stops every lane before its next
        # message: nothing leaves that could not be recorded, at most what was on the wire.
        stopped: list[BaseException] = []

        async def lane(share: list[OutgoingMessage]) -> None:
            try:
                await self._lane(share, progress, stopped)
            except Exception as e:
                stopped.append(e)

        await asyncio.gather(*(lane(share) for share in lanes if share))
        if stopped:
            raise stopped[0]

    async def _lane(self, messages: list[OutgoingMessage], progress: Progress, stopped: list[BaseException]) -> None:
        """One connection's share: each message is marked just before it goes on the wire and
        its outcome recorded as soon as the server answers, so at most one message per
        connection is in doubt at any moment."""
        client: aiosmtplib.SMTP | None = None

        def never_left(rest: list[OutgoingMessage], reason: str) -> None:
            for x in rest:
                progress.sent(SendResult(x.send_id, False, reason=reason, unreachable=True))

        try:
            for n, m in enumerate(messages):
                if stopped:
                    return None
                if self.halted:
                    return never_left(messages[n:], self.halted)
                if client is None or not client.is_connected:
                    try:
                        client = self._client()
                        await client.connect()
                    except aiosmtplib.SMTPAuthenticationError as e:
                        self.halted = (
                            f"SMTP authentication failed ({e.code}); e-mail is halted until the "
                            "settings are fixed (HUOKE_SMTP_USERNAME / HUOKE_SMTP_PASSWORD)"
                        )
                        log.error(self.halted)
                        return never_left(messages[n:], self.halted)
                    except _TRANSIENT as e:
                        return never_left(messages[n:], f"cannot reach SMTP server {self.host}:{self.port}: {e}")
                wait = self.limiter.delay()
                if wait:
                    await asyncio.sleep(wait)
                if progress.sending(m):
                    progress.sent(await self._send_one(client, m))
        finally:
            if client is not None and client.is_connected:
                try:
                    await client.quit()
                except aiosmtplib.SMTPException:
                    client.close()
        return None

    async def _send_one(self, client: aiosmtplib.SMTP, m: OutgoingMessage) -> SendResult:
        msg = build_email(m, self.sender_name, self.sender_email)
        try:
            refused, reply = await client.send_message(msg)
        except aiosmtplib.SMTPRecipientsRefused as e:
            # The reason is stored in the clear: it names no address (servers often echo it).
            codes = "; ".join(f"{r.code} {r.message.replace(r.recipient, 'the recipient')}" for r in e.recipients)
            permanent = all(r.code >= 500 for r in e.recipients)
            return SendResult(
                m.send_id, False, reason=f"recipient refused: {codes}", permanent=permanent, bounced=permanent
            )
        except aiosmtplib.SMTPResponseException as e:
            return SendResult(m.send_id, False, reason=f"SMTP {e.code} {e.message}", permanent=e.code >= 500)
        except _TRANSIENT as e:
            return SendResult(m.send_id, False, reason=f"connection lost: {e}")
        if refused:
            codes = "; ".join(f"{r}: {c[0]} {c[1]}" for r, c in refused.items())
            return SendResult(m.send_id, False, reason=f"recipient refused: {codes}", permanent=True, bounced=True)
        return SendResult(m.send_id, True, provider_ref=reply)
