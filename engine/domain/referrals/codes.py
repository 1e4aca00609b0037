"""Referral codes: 8 characters of Crockford base32 from an HMAC of the lead id, so a code is
stable for its lead, unguessable without the key, and easy to read aloud or type (no I, L, O,
U; reading forgives case, hyphens, spaces, and I/L for 1 and O for 0)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from uuid import UUID

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_STANDARD = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_TO_CROCKFORD = str.maketrans(_STANDARD, CROCKFORD)
_READ = str.maketrans({"I": "1", "L": "1", "O": "0", "-": None, " ": None})
LENGTH = 8


def referral_code(key: bytes, lead_id: UUID) -> str:
    """The lead's code: the first 40 bits of HMAC-SHA256(key, lead id) in Crockford base32."""
    digest = hmac.new(key, lead_id.bytes, hashlib.sha256).digest()[:5]
    return base64.b32encode(digest).decode().translate(_TO_CROCKFORD)


def read_code(text: str) -> str | None:
    """A code as someone typed it, normalised; None if it cannot be a code."""
    code = text.strip().upper().translate(_READ)
    if len(code) != LENGTH or any(c not in CROCKFORD for c in code):
        return None
    return code
