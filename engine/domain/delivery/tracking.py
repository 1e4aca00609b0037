"""Tracked links and what a click means: pure rules (no I/O, no clock).

Every ``http(s)`` link huoke renders into a message is replaced by huoke's own short link,
``<public url>/l/<code>``: the code is 31 characters — the message's send id, the link's place in
it and an HMAC of both under the link key — so it names neither the person nor the destination,
and cannot be forged for another message or link. An SMS link is the public URL plus 34
characters (``https://lender.cn/l/`` and the code: 51), which keeps a message of one segment in
one or two.

A click counts as a person's only when nothing says a machine made it: mail security gateways and
link scanners (a known crawler or scanner user agent, an empty one, a ``HEAD`` request) and
prefetchers (a click within ``SCANNER_WINDOW`` of the message leaving — no person opens a message
and clicks that fast) are recorded as ``scanner`` clicks and never count as engagement.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from uuid import UUID

#: Characters of a link code: 16 bytes of send id, 1 of link place, 6 of HMAC, URL-safe base64.
CODE_LENGTH = 31
#: A click sooner than this after the message left is a machine's (gateways click within seconds).
SCANNER_WINDOW = timedelta(seconds=10)
#: The query parameter a tracked link adds to its destination: the click's reference, which the
#: lender's site can send back with an application (conversion attribution). No personal data.
CLICK_REF = "hk"

#: A URL in plain text (e-mail text parts, SMS): it ends at white space, quotes, angle brackets
#: and full-width (CJK) punctuation; trailing sentence punctuation is not part of it.
_URL = re.compile(r"https?://[^\s<>\"'\u3000-\u303f\uff00-\uffef]+")
_TRAILING = ".,;:!?)]}'\""


class ClickKind(StrEnum):
    """Who clicked: a person, or a machine on their behalf (never engagement)."""

    HUMAN = "human"
    SCANNER = "scanner"


@dataclass(frozen=True)
class ClickVerdict:
    kind: ClickKind
    reason: str


def tracking_key(link_key: str) -> bytes:
    """The key that signs link codes, derived from a link key (HUOKE_UNSUBSCRIBE_SECRET): rotating
    the link key rotates it, and older link keys keep older codes working."""
    return hmac.new(link_key.encode(), b"huoke-tracked-links", hashlib.sha256).digest()


def link_code(key: bytes, send_id: UUID, n: int) -> str:
    """The code of link ``n`` (1 to 255) of the message ``send_id``."""
    return LinkSigner(key).code(send_id, n)


class LinkSigner:
    """Signs link codes with one key; the key's HMAC state is set up once (copying it costs a
    fraction of setting it up, and a message's links are signed as it renders)."""

    def __init__(self, key: bytes) -> None:
        self._mac = hmac.new(key, digestmod=hashlib.sha256)

    def code(self, send_id: UUID, n: int) -> str:
        body = send_id.bytes + bytes((n,))
        mac = self._mac.copy()
        mac.update(body)
        return base64.urlsafe_b64encode(body + mac.digest()[:6]).decode().rstrip("=")


def read_code(keys: Iterable[bytes], code: str) -> tuple[UUID, int] | None:
    """(send id, link place) of a code signed with one of ``keys``; None for anything else."""
    if len(code) != CODE_LENGTH or not code.isascii():
        return None
    try:
        raw = base64.urlsafe_b64decode(code + "=")
    except ValueError:
        return None
    if len(raw) != 23 or base64.urlsafe_b64encode(raw).decode().rstrip("=") != code:
        return None  # the last character's two spare bits set: one code, one spelling
    body, mac = raw[:17], raw[17:]
    if not any(hmac.compare_digest(hmac.digest(k, body, "sha256")[:6], mac) for k in keys):
        return None
    return UUID(bytes=body[:16]), body[16]


def is_code(text: str) -> bool:
    """Whether ``text`` has the shape of a link code (anything else is refused before any look-up)."""
    return len(text) == CODE_LENGTH and all(c.isascii() and (c.isalnum() or c in "-_") for c in text)


def text_links(text: str) -> list[tuple[int, int, str]]:
    """(start, end, url) of every http(s) URL in plain text, in order."""
    found = []
    for m in _URL.finditer(text):
        url = m.group(0).rstrip(_TRAILING)
        if len(url) > len("https://"):
            found.append((m.start(), m.start() + len(url), url))
    return found


def replace_links(text: str, replace: dict[str, str]) -> str:
    """``text`` with each URL found in it that ``replace`` names swapped for its replacement."""
    out, last = [], 0
    for start, end, url in text_links(text):
        if url in replace:
            out += [text[last:start], replace[url]]
            last = end
    return "".join(out) + text[last:]


def tracked(url: str, untracked: Iterable[str]) -> bool:
    """Whether a rendered link is tracked: http(s), and not one that must reach huoke itself or
    stay the lead's own (unsubscribe, confirmation, referral links and the template's ``notrack``)."""
    return url.startswith(("http://", "https://")) and not url.startswith(tuple(u for u in untracked if u))


def classify_click(method: str, user_agent: str, known_bot: bool, since_sent: timedelta | None) -> ClickVerdict:
    """Whether a click is a person's; a machine's click says which rule caught it."""
    if method.upper() == "HEAD":
        return ClickVerdict(ClickKind.SCANNER, "HEAD request (link checkers fetch headers only)")
    if not user_agent.strip():
        return ClickVerdict(ClickKind.SCANNER, "no user agent")
    if known_bot:
        return ClickVerdict(ClickKind.SCANNER, "a known crawler, scanner or preview agent")
    if since_sent is not None and since_sent < SCANNER_WINDOW:
        seconds = max(since_sent.total_seconds(), 0)
        return ClickVerdict(ClickKind.SCANNER, f"{seconds:.0f} s after the message left (a gateway's prefetch)")
    return ClickVerdict(ClickKind.HUMAN, "a person's browser")
