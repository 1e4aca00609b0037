"""Signed links a lead opens from a message: unsubscribe and double opt-in confirmation.

A token binds the purpose, the lead, the channel and an expiry day with an HMAC-SHA256 under
the current link key, and names that key (``kid``), so keys can rotate: links signed with an
older key keep working while it is listed among the old keys. Unsubscribe links live long (a
message may be opened months later, and opting out must always work); confirmation links
expire in days. Anything else — a forged, truncated, non-ASCII or oversized token — is simply
not valid, never an error.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID

from engine.domain.shared.errors import LeadNotFoundError

#: How long a link works after the message is sent, by purpose.
LIFETIME = {"unsubscribe": timedelta(days=400), "confirm": timedelta(days=7), "dashboard": timedelta(days=1)}
#: Longer than any token huoke makes; a longer one is refused before any work.
MAX_TOKEN = 96
_DAY = 86_400


class LinkCheck(StrEnum):
    VALID = "valid"
    EXPIRED = "expired"
    INVALID = "invalid"


@dataclass(frozen=True)
class LinkKeys:
    """The key that signs new links and the older keys whose links still work."""

    current: str
    old: tuple[str, ...] = ()

    def by_id(self, kid: str) -> str | None:
        return next((k for k in (self.current, *self.old) if key_id(k) == kid), None)


def key_id(secret: str) -> str:
    """A short public name of a key (not enough to guess it)."""
    return hashlib.sha256(b"huoke-link-key:" + secret.encode()).hexdigest()[:6]


def _mac(secret: str, message: str) -> str:
    digest = hmac.new(secret.encode(), message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:18]).decode()


def make_token(keys: LinkKeys, purpose: str, lead_id: UUID, channel: str, now: datetime) -> str:
    """``kid.expiry-day.issued-millisecond.mac``: URL-safe, about 50 characters. The moment it
    was issued is signed too: a confirmation link older than an opt-out grants nothing, and a
    dashboard session older than a sign-out is over."""
    expires = int((now + LIFETIME[purpose]).timestamp()) // _DAY
    issued = int(now.timestamp() * 1000)
    mac = _mac(keys.current, f"{purpose}|{lead_id}|{channel}|{expires}|{issued}")
    return f"{key_id(keys.current)}.{expires:x}.{issued:x}.{mac}"


def check_token(keys: LinkKeys, purpose: str, lead_id: UUID, channel: str, token: str, now: datetime) -> LinkCheck:
    """Whether ``token`` is a link huoke signed for exactly this purpose, lead and channel."""
    if len(token) > MAX_TOKEN or not token.isascii():
        return LinkCheck.INVALID
    parts = token.split(".")
    if len(parts) == 1 and purpose == "unsubscribe":
        # Links sent before tokens carried a purpose and an expiry: opting out must keep working.
        legacy = [_legacy(k, lead_id, channel) for k in (keys.current, *keys.old)]
        return LinkCheck.VALID if any(hmac.compare_digest(t, token) for t in legacy) else LinkCheck.INVALID
    if len(parts) == 3 and purpose in ("unsubscribe", "confirm"):  # sent before links named their moment
        (kid, day, mac), moment = parts, ""
    elif len(parts) == 4 and _hex(parts[2]) is not None:
        kid, day, issued, mac = parts
        moment = f"|{_hex(issued)}"
    else:
        return LinkCheck.INVALID
    secret, expires = keys.by_id(kid), _hex(day)
    if secret is None or expires is None:
        return LinkCheck.INVALID
    if not hmac.compare_digest(_mac(secret, f"{purpose}|{lead_id}|{channel}|{expires}{moment}"), mac):
        return LinkCheck.INVALID
    if now.astimezone(UTC).timestamp() // _DAY > expires:
        return LinkCheck.EXPIRED
    return LinkCheck.VALID


def issued_at(purpose: str, token: str) -> datetime | None:
    """When a token (already checked) was issued; for links from before tokens said so, the
    earliest moment it can have been (its expiry day less its lifetime)."""
    parts = token.split(".")
    if len(parts) == 4 and (issued := _hex(parts[2])) is not None:
        return datetime.fromtimestamp(issued / 1000, UTC)
    if len(parts) == 3 and (expires := _hex(parts[1])) is not None:
        return datetime.fromtimestamp(expires * _DAY, UTC) - LIFETIME[purpose]
    return None


def _hex(text: str) -> int | None:
    try:
        return int(text, 16) if 0 < len(text) <= 16 else None
    except ValueError:
        return None


def _legacy(secret: str, lead_id: UUID, channel: str) -> str:
    return _mac(secret, f"{lead_id}:{channel}")


def check_lead_link(
    engine: Any, keys: LinkKeys, purpose: str, lead_id: UUID, channel: str, token: str
) -> tuple[LinkCheck, str | None]:
    """Whether a lead's own link (unsubscribe on any channel, confirm by e-mail) is genuine and
    current, and the lead's language (None when the link names no lead of this store)."""
    allowed = ("email", "sms", "phone") if purpose == "unsubscribe" else ("email",)
    if channel not in allowed:
        return LinkCheck.INVALID, None
    verdict = check_token(keys, purpose, lead_id, channel, token, engine.clock.now())
    if verdict is LinkCheck.INVALID:
        return verdict, None
    try:
        return verdict, engine.leads.get_lead(lead_id).contact.get("language")
    except LeadNotFoundError:
        return LinkCheck.INVALID, None
