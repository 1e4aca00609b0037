"""The outbox transport is the record of what left: an SMS another process of the store appended
(an embedded run's helper) is found there, so an in-doubt message is reconciled, not resent."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from uuid import uuid4

from engine.adapters.outbox import OutboxSmsChannel
from engine.application.ports import OutgoingMessage, RenderedMessage, SendResult


class Recorded:
    """A dispatcher's side of the progress protocol: every message may leave."""

    def __init__(self) -> None:
        self.results: list[SendResult] = []

    def sending(self, messages: list[OutgoingMessage], settled: Sequence[SendResult] = ()) -> list[bool]:
        self.results.extend(settled)
        return [True] * len(messages)

    def sent(self, results: Sequence[SendResult]) -> None:
        self.results.extend(results)


def test_an_sms_another_process_appended_is_found_sent(tmp_path: Path) -> None:
    ours, theirs = OutboxSmsChannel(tmp_path), OutboxSmsChannel(tmp_path)  # two processes' channels
    message = OutgoingMessage(
        send_id=uuid4(), channel="sms", to="+8613800138000",
        body=RenderedMessage(None, "您好", None, "zh-CN", "default"), unsubscribe_url="",
    )  # fmt: skip
    progress = Recorded()
    theirs.send_batch([message], progress)
    assert [r.ok for r in progress.results] == [True]
    assert ours.already_sent(message.send_id) == f"{tmp_path / 'sms.jsonl'}#{message.send_id}"
    assert ours.already_sent(uuid4()) is None
