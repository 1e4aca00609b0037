"""Build the RFC 5322 message for an e-mail send (shared by the outbox and SMTP channels).

Built with the compat32 MIME classes: four times faster than EmailMessage's default policy
(0.6 ms against 2.4 ms a message here) and what most mail libraries emit — and written out with
a compat32 policy that passes a short plain-ASCII header through as it is instead of running it
through ``email.header.Header`` (the same bytes; a third of the time went there).
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import Compat32
from email.utils import format_datetime, formataddr

from engine.application.ports import OutgoingMessage


class _Headers(Compat32):
    """compat32, but a header whose value is short, printable ASCII on one line is written as
    ``Name: value`` directly: what ``Header.encode`` would make of it, without the work."""

    def _fold(self, name: str, value: object, sanitize: bool) -> str:
        if (
            isinstance(value, str)
            and value.isascii()
            and value.isprintable()
            and value == value.strip()
            and len(name) + len(value) + 2 <= (self.max_line_length or 78)
        ):
            return f"{name}: {value}{self.linesep}"
        return str(super()._fold(name, value, sanitize))  # type: ignore[misc]  # compat32's own


#: The policy every e-mail huoke builds is written out with.
POLICY = _Headers()


def message_id(send_id: object, sender_email: str) -> str:
    """The Message-ID carrying the deterministic send id."""
    domain = sender_email.rpartition("@")[2] or "huoke.local"
    return f"<{send_id}@{domain}>"


def build_email(m: OutgoingMessage, sender_name: str, sender_email: str, now: datetime | None = None) -> MIMEMultipart:
    """Multipart text+HTML with one-click unsubscribe headers (RFC 8058)."""
    msg = MIMEMultipart("alternative", policy=POLICY)
    msg["From"] = formataddr((sender_name, sender_email), charset="utf-8")
    msg["To"] = m.to
    msg["Subject"] = Header(m.body.subject or "", "utf-8")  # type: ignore[assignment]  # compat32 takes a Header
    msg["Date"] = format_datetime(now or m.at or datetime.now(UTC))  # the send time by the engine's clock
    msg["Message-ID"] = message_id(m.send_id, sender_email)
    msg["List-Unsubscribe"] = f"<{m.unsubscribe_url}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg["Content-Language"] = m.body.locale
    msg["X-Huoke-Send-Id"] = str(m.send_id)
    for key, value in m.headers.items():
        msg[key] = value
    msg.attach(MIMEText(m.body.text, "plain", "utf-8", policy=POLICY))
    if m.body.html:
        msg.attach(MIMEText(m.body.html, "html", "utf-8", policy=POLICY))
    return msg
