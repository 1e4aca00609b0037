"""How a channel hands its messages to the dispatcher's ``Progress``: one at a time between
markers and outcomes committed together, and a ``Progress`` that records nothing."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from engine.application.ports import OutgoingMessage, Progress, SendResult


class CollectedResults:
    """A ``Progress`` that lets every message go and keeps each outcome: for sends no dispatcher
    records (a test send, a benchmark)."""

    def __init__(self) -> None:
        self.results: list[SendResult] = []

    def sending(self, messages: list[OutgoingMessage], settled: Sequence[SendResult] = ()) -> list[bool]:
        self.results += settled
        return [True] * len(messages)

    def sent(self, results: Sequence[SendResult]) -> None:
        self.results += results


def send_each(
    messages: list[OutgoingMessage],
    progress: Progress,
    send_one: Callable[[OutgoingMessage], SendResult],
    together: int = 1,
) -> None:
    """Send one message at a time, ``together`` between one commit of their markers and one of
    their outcomes (each group's outcomes committed with the next group's markers): 1 for a
    channel whose in-doubt messages are resent on trust (a provider's idempotency key), more for
    one that finds exactly what left (an outbox folder)."""
    answered: list[SendResult] = []
    for i in range(0, len(messages), together):
        group = messages[i : i + together]
        going = progress.sending(group, settled=answered)
        answered = [send_one(m) for m, go in zip(group, going, strict=True) if go]
    if answered:
        progress.sent(answered)
