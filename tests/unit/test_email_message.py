"""The e-mail huoke builds is written out byte for byte as compat32 writes it, short ASCII headers
passed through without ``email.header.Header``'s work."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes
from email.generator import Generator
from email.policy import compat32
from typing import Any
from uuid import UUID

import pytest

from engine.adapters.email_message import build_email, email_bytes
from engine.application.ports import OutgoingMessage, RenderedMessage

SEND_ID = UUID("12345678-1234-5678-1234-567812345678")


def _message(
    subject: str, to: str, url: str, headers: dict[str, str], text: str = "您好 Alex,\nyour offer is ready.\n",
    html: str | None = "<p>您好 <b>Alex</b></p>",
) -> OutgoingMessage:  # fmt: skip
    body = RenderedMessage(subject, text, html, "zh-CN", "zh-CN")
    at = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    return OutgoingMessage(SEND_ID, "email", to, body, url, headers=headers, at=at)


#: Header shapes: plain, non-ASCII, folded, trailing spaces and tabs, encoded-looking, empty.
SHAPES = [
    ("Your offer is ready", "alex@example.com", "https://lender.example/u/abc", {}),
    ("您的贷款预批已就绪 — 3.85% APR, 36 months", "陈先生 <chen@example.com>", "https://l.example/u/x", {}),
    ("A" * 90 + " long subject that must fold", "a@b.example", "https://l.example/u/" + "x" * 120, {}),
    (
        "trailing space ",
        " lead@example.com",
        "https://l.example/u/y",
        {"X-Campaign": "spring 2026 ", "X-Tab": "a\tb"},
    ),
    ("=?utf-8?q?looks_encoded?=", "x@y.example", "https://l.example/u/z", {"X-Empty": "", "X-Semi": "a; b, c"}),
]


@pytest.mark.parametrize(("subject", "to", "url", "headers"), SHAPES)
def test_an_email_is_written_as_compat32_writes_it(
    subject: str, to: str, url: str, headers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Generator, "_make_boundary", classmethod(lambda cls, text=None: "===============7=="))
    msg = build_email(_message(subject, to, url, headers), "好客 Lender", "news@lender.example")
    ours = msg.as_bytes()
    assert ours == msg.as_bytes(policy=compat32)
    assert ours == msg.as_bytes(policy=compat32.clone(linesep="\r\n")).replace(b"\r\n", b"\n")
    parsed = message_from_bytes(ours)
    assert parsed["X-Huoke-Send-Id"] == str(SEND_ID) and "".join(parsed["List-Unsubscribe"].split()) == f"<{url}>"


BODIES = [
    ("您好 Alex,\nyour offer is ready.\n", "<p>您好 <b>Alex</b></p>"),
    ("plain text only, no HTML part", None),
    ("", "<p>an empty text part</p>"),
    ("From the desk of your loan officer\r\nwindows line ends\r\n" + "长" * 400, "<p>" + "x" * 5000 + "</p>"),
]


@pytest.mark.parametrize(("text", "html"), BODIES)
@pytest.mark.parametrize(("subject", "to", "url", "headers"), SHAPES)
def test_email_bytes_are_the_bytes_of_the_built_message(
    subject: str, to: str, url: str, headers: dict[str, str], text: str, html: str | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """The outbox writes ``email_bytes`` without building the message objects (issue 27): they
    are the bytes ``build_email(...).as_bytes()`` writes, for every header and body shape."""
    boundary = "===============0123456789012345678=="
    monkeypatch.setattr(Generator, "_make_boundary", classmethod(lambda cls, text=None: boundary))
    m = _message(subject, to, url, headers, text, html)
    built = build_email(m, "好客 Lender", "news@lender.example").as_bytes()
    assert email_bytes(m, "好客 Lender", "news@lender.example", boundary=boundary) == built
    parsed = message_from_bytes(email_bytes(m, "好客 Lender", "news@lender.example"))  # a boundary of its own
    parts: Any = parsed.get_payload()
    assert [bytes(part.get_payload(decode=True)).decode() for part in parts] == [text, *([html] if html else [])]
