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


#: English words that opt out wherever they stand in a short reply ("STOP please", "pls unsubscribe").
_OPT_OUT_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "OPTOUT"})
#: English phrases that opt out in a reply of any length.
_OPT_OUT_PHRASES = (
    "OPT OUT",
    "REMOVE ME",
    "TAKE ME OFF",
    "DO NOT TEXT",
    "DONT TEXT",
    "DO NOT CONTACT",
    "DONT CONTACT",
    "NO MORE TEXTS",
    "NO MORE MESSAGES",
)
#: Chinese phrasings of "unsubscribe" / "stop sending": each opts out wherever it stands.
_OPT_OUT_ZH = (
    "退订",
    "退定",
    "拒收",
    "取消订阅",
    "不要再发",
    "别再发",
    "不要发",
    "别发",
    "不用再发",
    "停止发送",
    "勿扰",
)
#: A short reply is one a person types to say one thing: at most this many words.
_SHORT = 6


def is_opt_out(text: str) -> bool:
    """Whether an SMS reply asks to stop: the carriers' keywords (STOP, T, TD, 退订 …) on their
    own, an opt-out word in a short reply ("STOP please"), or an opt-out phrase in English or
    Chinese ("请退订", "不要再发了", "remove me"). Case-, width- and punctuation-insensitive:
    full-width "Ｔ Ｄ" is TD. A false stop costs a marketing channel; a missed one breaks the law."""
    folded = unicodedata.normalize("NFKC", text).upper().replace("'", "").replace("\u2019", "")
    folded = "".join(ch if ch.isalnum() or "\u4e00" <= ch <= "\u9fff" else " " for ch in folded)
    words = folded.split()
    spaced = " ".join(words)
    if spaced in OPT_OUT_KEYWORDS or "".join(words) in OPT_OUT_KEYWORDS:
        return True
    if any(phrase in "".join(words) for phrase in _OPT_OUT_ZH):
        return True
    if any(f" {phrase} " in f" {spaced} " for phrase in _OPT_OUT_PHRASES):
        return True
    return len(words) <= _SHORT and any(w in _OPT_OUT_WORDS for w in words)


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
