"""Build the RFC 5322 message for an e-mail send (shared by the outbox and SMTP channels)."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from datetime import UTC, datetime

from engine.application.ports import OutgoingMessage


def message_id(send_id: object, sender_email: str) -> str:
    """The Message-ID carrying the deterministic send id."""
    domain = sender_email.rpartition("@")[2] or "huoke.local"
    return f"<{send_id}@{domain}>"


def build_email(
    m: OutgoingMessage, sender_name: str, sender_email: str, now: datetime | None = None
) -> EmailMessage:
    """Multipart text+HTML with one-click unsubscribe headers (RFC 8058)."""
    msg = EmailMessage()
    msg["From"] = formataddr((sender_name, sender_email))
    msg["To"] = m.to
    msg["Subject"] = m.body.subject or ""
    msg["Date"] = format_datetime(now or datetime.now(UTC))
    msg["Message-ID"] = message_id(m.send_id, sender_email)
    msg["List-Unsubscribe"] = f"<{m.unsubscribe_url}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg["Content-Language"] = m.body.locale
    msg["X-Huoke-Send-Id"] = str(m.send_id)
    for key, value in m.headers.items():
        msg[key] = value
    msg.set_content(m.body.text)
    if m.body.html:
        msg.add_alternative(m.body.html, subtype="html")
    return msg
