"""The suppression list: hashed contacts that opted out, so a partner file cannot bring them back."""

from __future__ import annotations

import hashlib
import unicodedata
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from engine.domain.shared.topics import keep_topics
from engine.domain.shared.values import derive_id

#: Reply keywords that opt out of SMS (DOMAIN.md): US carriers' and Chinese providers'.
OPT_OUT_KEYWORDS = frozenset(
    {
        "STOP",
        "STOPALL",
        "QUIT",
        "END",
        "CANCEL",
        "UNSUBSCRIBE",
        "REVOKE",
        "OPT OUT",
        "OPTOUT",
        "T",
        "TD",
        "R",
        "N",
        "退订",
        "取消",
    }
)


def is_opt_out(text: str) -> bool:
    """Whether an SMS reply is an opt-out keyword (case-, width- and punctuation-insensitive)."""
    folded = unicodedata.normalize("NFKC", text).upper().strip()
    folded = "".join(ch for ch in folded if ch.isalnum() or ch.isspace() or "\u4e00" <= ch <= "\u9fff")
    return " ".join(folded.split()) in OPT_OUT_KEYWORDS


def contact_hash(pepper: str, kind: str, value: str) -> str:
    """A keyed hash of a normalised phone (E.164) or e-mail: the list never holds the contact itself."""
    return hashlib.sha256(f"{pepper}\x1f{kind}\x1f{value.strip().lower()}".encode()).hexdigest()


def suppression_id(digest: str) -> UUID:
    return derive_id("suppression", digest)


class Suppression(Aggregate):
    """One opted-out contact (by hash), and every channel it opted out of."""

    class Listed(Aggregate.Created):
        digest: str

    class Suppressed(Aggregate.Event):
        channel: str
        reason: str
        source: str
        at: datetime

    @event(Listed)
    def __init__(self, digest: str) -> None:
        self.digest = digest
        self.channels: set[str] = set()

    @staticmethod
    def create_id(digest: str, **_: Any) -> UUID:
        return suppression_id(digest)

    def suppress(self, channel: str, reason: str, source: str, at: datetime) -> None:
        if channel not in self.channels:
            self._suppressed(channel=channel, reason=reason, source=source, at=at)

    @event(Suppressed)
    def _suppressed(self, channel: str, reason: str, source: str, at: datetime) -> None:
        self.channels.add(channel)


keep_topics("engine.domain.suppression", Suppression)
