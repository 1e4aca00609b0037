"""Build the RFC 5322 message for an e-mail send (shared by the outbox and SMTP channels).

Built with the compat32 MIME classes: four times faster than EmailMessage's default policy
(0.6 ms against 2.4 ms a message here) and what most mail libraries emit — and written out with
a compat32 policy that passes a short plain-ASCII header through as it is instead of running it
through ``email.header.Header`` (the same bytes; a third of the time went there). The outbox
writes ``email_bytes``: those bytes without the objects (0.05 ms a message against 0.46).
"""

from __future__ import annotations

import random
import sys
from datetime import UTC, datetime
from email.charset import Charset
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import Compat32
from email.utils import format_datetime, formataddr
from functools import lru_cache
from typing import Any

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


class _Subject(str):
    """The subject among the headers: written as a UTF-8 ``Header`` (compat32 takes one)."""

    __slots__ = ()


def _headers(m: OutgoingMessage, sender_name: str, sender_email: str, now: datetime | None) -> list[tuple[str, Any]]:
    """The message's own headers, in order (after Content-Type and MIME-Version)."""
    return [
        ("From", formataddr((sender_name, sender_email), charset="utf-8")),
        ("To", m.to),
        ("Subject", _Subject(m.body.subject or "")),
        ("Date", format_datetime(now or m.at or datetime.now(UTC))),  # the send time by the engine's clock
        ("Message-ID", message_id(m.send_id, sender_email)),
        ("List-Unsubscribe", f"<{m.unsubscribe_url}>"),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ("Content-Language", m.body.locale),
        ("X-Huoke-Send-Id", str(m.send_id)),
        *m.headers.items(),
    ]


def _bodies(m: OutgoingMessage) -> list[tuple[str, str]]:
    return [("plain", m.body.text), *([("html", m.body.html)] if m.body.html else [])]


def build_email(m: OutgoingMessage, sender_name: str, sender_email: str, now: datetime | None = None) -> MIMEMultipart:
    """Multipart text+HTML with one-click unsubscribe headers (RFC 8058)."""
    msg = MIMEMultipart("alternative", policy=POLICY)
    for name, value in _headers(m, sender_name, sender_email, now):
        msg[name] = Header(value, "utf-8") if isinstance(value, _Subject) else value  # type: ignore[assignment]
    for subtype, text in _bodies(m):
        msg.attach(MIMEText(text, subtype, "utf-8", policy=POLICY))
    return msg


_UTF8 = Charset("utf-8")


def _part_head(subtype: str) -> bytes:
    fields = (
        ("Content-Type", f'text/{subtype}; charset="utf-8"'),
        ("MIME-Version", "1.0"),
        ("Content-Transfer-Encoding", "base64"),
    )
    return b"".join(POLICY.fold_binary(n, v) for n, v in fields) + b"\n"


#: Each body part's headers as a part of ``build_email``'s is written with them.
_PART_HEADS = {subtype: _part_head(subtype) for subtype in ("plain", "html")}


def new_boundary() -> str:
    """A multipart boundary as the email package makes one. It never needs checking against
    the parts: they are base64 lines and fixed headers, and no base64 line holds fifteen '='."""
    return "=" * 15 + f"{random.randrange(sys.maxsize):019d}=="


#: Every boundary ``new_boundary`` makes has this shape (none of the characters compat32 folds
#: at), so the multipart Content-Type folds the same way for each: folded once, the boundary put
#: in after.
_SPLIT_CHARS = ";, \t"
_SHAPE = "=" * 15 + "0" * 19 + "=="
_CONTENT_TYPE = POLICY.fold_binary("Content-Type", f'multipart/alternative; boundary="{_SHAPE}"')
_MIME_VERSION = POLICY.fold_binary("MIME-Version", "1.0")


@lru_cache(maxsize=4096)
def _subject_line(subject: str) -> bytes:
    """A subject's folded line (a template's subject is the same for many leads)."""
    return POLICY.fold_binary("Subject", Header(subject, "utf-8"))  # type: ignore[arg-type]  # compat32 takes a Header


def email_bytes(
    m: OutgoingMessage, sender_name: str, sender_email: str, now: datetime | None = None, boundary: str = ""
) -> bytes:
    """The bytes of ``build_email(...)``, written as ``as_bytes()`` writes them (a test holds the
    two to the same bytes), without the message objects or the generator: each header folded by
    the same policy, each body base64-encoded by the same codec. Measured here on 3,000 messages
    with Chinese text: 0.05 ms a message against 0.46 ms for building and writing the objects."""
    boundary = boundary or new_boundary()
    if len(boundary) == len(_SHAPE) and not any(c in boundary for c in _SPLIT_CHARS):
        content_type = _CONTENT_TYPE.replace(_SHAPE.encode(), boundary.encode())
    else:
        content_type = POLICY.fold_binary("Content-Type", f'multipart/alternative; boundary="{boundary}"')
    out = [content_type, _MIME_VERSION]
    for name, value in _headers(m, sender_name, sender_email, now):
        out.append(_subject_line(value) if isinstance(value, _Subject) else POLICY.fold_binary(name, value))
    mark = f"--{boundary}".encode()
    out += [b"\n", mark]
    for subtype, text in _bodies(m):
        out += [b"\n", _PART_HEADS[subtype], _UTF8.body_encode(text).encode("ascii"), b"\n", mark]
    out.append(b"--\n")
    return b"".join(out)
