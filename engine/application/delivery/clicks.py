"""Following a tracked link: the use case behind ``/l/<code>`` (and ``/o/<code>``, the open
pixel), and what the demo's recipients do. A code resolves only to a destination huoke itself
rendered into that message (recorded with its dispatch marker): never an open redirect. Each
click is recorded on the message's ``Delivery`` — a person's or a machine's, by the rules of
``engine.domain.delivery.tracking`` — once per link and kind, so a repeated or replayed request
changes nothing. Clicks are recorded in batches (``ClickWriter``): the redirect waits for its
batch's commit, so a click that was answered is a click that was recorded."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from uuid import UUID

from engine.application.delivery.app import Deliveries
from engine.domain.delivery.delivery import Delivery
from engine.domain.delivery.tracking import CLICK_REF, ClickKind, classify_click, read_code, tracking_key
from engine.eventstore.saving import current_aggregates, retry_conflicts, save_batch


@dataclass(frozen=True)
class Click:
    """One request for a tracked link (or the open pixel, link 0)."""

    code: str
    method: str
    user_agent: str
    at: datetime


@dataclass(frozen=True)
class Followed:
    """Where a click goes (None: no such link, or its destination is gone with an erasure) and
    how it was counted."""

    url: str | None
    kind: ClickKind | None = None
    recorded: bool = False


def with_click_ref(url: str, code: str) -> str:
    """The destination with the click's reference (``hk=<code>``) for the lender's site to send
    back with an application; no personal data. The fragment stays last."""
    parts = urlsplit(url)
    query = [*((k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != CLICK_REF), (CLICK_REF, code)]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


@dataclass
class Clicks:
    """Resolves codes and records clicks and opens on their deliveries."""

    deliveries: Deliveries
    #: The keys codes may be signed with (the current link key first, then older ones).
    keys: Sequence[bytes]
    #: Whether a user agent is a known crawler, scanner or link-preview agent.
    is_bot: Callable[[str], bool]

    def follow(self, clicks: Sequence[Click]) -> list[Followed]:
        """Resolve and record a batch of clicks in one transaction (retried on a conflict with a
        worker writing the same delivery)."""
        return retry_conflicts(self.deliveries, lambda: self._follow(clicks))

    def _follow(self, clicks: Sequence[Click]) -> list[Followed]:
        read = [read_code(self.keys, c.code) for c in clicks]
        found = current_aggregates(self.deliveries, {r[0] for r in read if r is not None})
        touched: dict[UUID, Delivery] = {}
        out = []
        for click, ref in zip(clicks, read, strict=True):
            delivery = found.get(ref[0]) if ref is not None else None
            if ref is None or not isinstance(delivery, Delivery):
                out.append(Followed(None))
                continue
            n = ref[1]
            if n == 0:  # the open pixel
                if delivery.record_open(click.at):
                    touched[delivery.id] = delivery
                out.append(Followed(None, recorded=True))
                continue
            url = delivery.link(n)
            if url is None:  # no such link, or unreadable since the lead was erased
                out.append(Followed(None))
                continue
            since = click.at - delivery.sent_at if delivery.sent_at is not None else None
            verdict = classify_click(click.method, click.user_agent, self.is_bot(click.user_agent), since)
            recorded = delivery.record_click(n, url, verdict.kind, verdict.reason, click.at)
            if recorded:
                touched[delivery.id] = delivery
            out.append(Followed(with_click_ref(url, click.code), verdict.kind, recorded))
        save_batch(self.deliveries, touched.values())
        return out


@dataclass(frozen=True)
class Conversion:
    """An application the lender's site says came through a tracked link (its ``hk`` reference)."""

    click_ref: str
    lead_id: UUID
    application_id: str
    at: datetime


def record_conversions(deliveries: Deliveries, conversions: Sequence[Conversion]) -> int:
    """Attribute each application to the message whose link it came through; a reference that is
    not huoke's, or names another lead's message, is ignored (it proves nothing). The number
    recorded (an application is recorded once)."""
    link_keys = deliveries.sender.link_keys
    keys = [tracking_key(k) for k in (link_keys.current, *link_keys.old) if k]
    read = [(c, read_code(keys, c.click_ref)) for c in conversions]

    def record() -> int:
        found = current_aggregates(deliveries, {r[0] for _, r in read if r is not None})
        touched: dict[UUID, Delivery] = {}
        for conversion, ref in read:
            delivery = found.get(ref[0]) if ref is not None else None
            if not isinstance(delivery, Delivery) or delivery.lead_id != conversion.lead_id:
                continue  # not huoke's reference, or another lead's message: it proves nothing
            if delivery.record_conversion(conversion.application_id, conversion.at):
                touched[delivery.id] = delivery
        save_batch(deliveries, touched.values())
        return len(touched)

    return retry_conflicts(deliveries, record) if read else 0


class ClickWriter:
    """Group commit for ``huoke serve``: requests hand their click to one writer thread, which
    records whatever has queued up in one transaction and then answers each request. A burst of
    clicks costs a few commits, not one each; each answer still comes after its commit."""

    def __init__(self, clicks: Clicks, most: int = 500) -> None:
        self.clicks, self.most = clicks, most
        self._queue: queue.Queue[tuple[Click, Future[Followed]]] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="huoke-clicks", daemon=True)
        self._thread.start()

    def submit(self, click: Click) -> Future[Followed]:
        future: Future[Followed] = Future()
        self._queue.put((click, future))
        return future

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < self.most:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                results = self.clicks.follow([c for c, _ in batch])
            except Exception as e:  # the store did not answer: these requests fail, the next may not
                for _, future in batch:
                    future.set_exception(e)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                future.set_result(result)
