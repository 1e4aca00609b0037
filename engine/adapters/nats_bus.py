"""The event bus (FastStream on NATS JetStream), on when ``HUOKE_NATS_URL`` is set.

In: ``<prefix>.in.leads`` and ``<prefix>.in.events`` carry the JSON of the API (one object or
an array). They are consumed in pull batches, applied with the file import's validation, and
acknowledged only after the store committed; each message id (``Nats-Msg-Id``, else the stream
sequence) is remembered, so a redelivered message changes nothing. An item or message that
cannot be used goes to ``<prefix>.dlq.<subject>`` with its reason and never blocks the stream.

Out: a relay follows the notification logs of leads, journeys and deliveries with tracking (a
transactional outbox) and publishes each event to ``<prefix>.out.<aggregate>.<event>`` with
``Nats-Msg-Id`` = the event's id, so JetStream drops the repeats a crash between publishing and
recording the position causes. Wire messages (``huoke.event/1``) are not the domain events:
they carry no personal data (the fields sealed at rest are left out), so an erased person's
data is never on the bus; subscribers look a lead up through the API.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from faststream import AckPolicy, FastStream
from faststream.nats import ConsumerConfig, JStream, NatsBroker, NatsMessage, PullSub
from faststream.specification import AsyncAPI

from engine.adapters.bus_messages import (
    DeadLetter,
    Decided,
    Inbox,
    _body,
    _deliveries,
    _problem,
    _seconds,
    _unquoted,
    _waits_for_lead,
    bus_logger,
    message_id,
    reference_of,
)
from engine.adapters.json_input import JsonInputError
from engine.adapters.lead_rows import lead_parser, lifecycle_parser
from engine.application import importing
from engine.application.engine import Engine
from engine.application.events_out import WireEvent, wire_event
from engine.application.importing import ImportReport, Rows
from engine.domain.shared.durations import backoff
from engine.eventstore import Tracking
from engine.settings import Settings

#: Repeats of a message id within this window are dropped by JetStream itself.
DUPLICATE_WINDOW = timedelta(hours=2)
#: Messages pulled at once, and how long a pull waits for a full batch.
PULL_BATCH = 500
PULL_TIMEOUT = 0.1
#: Pulled batches being applied at once (the next pull overlaps the store's work on this one).
IN_FLIGHT = 2
#: Seconds before a pulled batch that was never acknowledged (its consumer died) is delivered again.
ACK_WAIT = 10.0
#: The longest pause between failed relay rounds.
RELAY_PAUSE_CAP = timedelta(seconds=30)
#: How often a lifecycle event for a lead not captured yet is delivered before it is dead-lettered,
#: and the pause between deliveries (seconds).
WAIT_FOR_LEAD = 5
LEAD_WAIT_DELAY = 2.0
#: Seconds to wait for JetStream to acknowledge a publish (a page goes out at once; a busy server
#: may take a while to acknowledge them all).
PUBLISH_TIMEOUT = 30.0


def _fetch_times_out_as_nats_says() -> None:
    """nats-py (2.15, 2.16) sometimes ends a pull ``fetch`` whose time ran out with a bare
    ``asyncio.TimeoutError`` instead of its own ``nats.errors.TimeoutError``; FastStream's pull
    loop (0.7.8) catches only the latter, so the loop dies, the batch it was gathering comes back
    only after ``ACK_WAIT``, and an error with a traceback is logged. Raise nats-py's own error
    there, as its other time-outs do. Idempotent."""
    from nats.errors import TimeoutError as NatsTimeout
    from nats.js.client import JetStreamContext

    pull = JetStreamContext.PullSubscription
    if getattr(pull.fetch, "huoke_fetch", False):
        return
    fetch = pull.fetch

    async def fetch_or_time_out(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await fetch(self, *args, **kwargs)
        except NatsTimeout:
            raise
        except TimeoutError as e:
            raise NatsTimeout from e

    fetch_or_time_out.huoke_fetch = True  # type: ignore[attr-defined]
    pull.fetch = fetch_or_time_out  # type: ignore[method-assign]


_fetch_times_out_as_nats_says()

#: Events read from a log per relay round.
RELAY_PAGE = 500


@dataclass
class Bus:
    """One bus process: the inbound consumers and the outbound relay around one engine."""

    settings: Settings
    engine: Engine
    tracker: Any
    inbox: Inbox
    consume: bool = True
    relay: bool = True
    broker: NatsBroker = field(init=False)
    _db: ThreadPoolExecutor = field(init=False)
    counts: dict[str, int] = field(default_factory=lambda: {"applied": 0, "dead": 0, "repeats": 0, "published": 0})
    _slot: asyncio.Semaphore | None = field(default=None, init=False)
    _in_flight: set[asyncio.Task[None]] = field(default_factory=set, init=False)

    def __post_init__(self) -> None:
        p = self.settings.bus_prefix
        self.broker = NatsBroker(
            self.settings.nats_url or "nats://127.0.0.1:4222",
            graceful_timeout=10,
            logger=bus_logger(),
            log_level=logging.DEBUG,  # a line per batch received: not in the log at INFO
        )
        self._db = ThreadPoolExecutor(1, thread_name_prefix="huoke-bus-db")  # one thread owns the store
        self.stream_in = JStream(name=f"{p}_in", subjects=[f"{p}.in.>"], duplicate_window=_seconds(DUPLICATE_WINDOW))
        self.stream_out = JStream(name=f"{p}_out", subjects=[f"{p}.out.>"], duplicate_window=_seconds(DUPLICATE_WINDOW))
        self.stream_dlq = JStream(name=f"{p}_dlq", subjects=[f"{p}.dlq.>"])
        if self.consume:
            region, tz = self.settings.default_phone_region, ZoneInfo(self.settings.timezone)
            leads, facts = lead_parser(region, tz), lifecycle_parser(region, tz)

            def import_leads(engine: Engine, label: str, rows: Rows) -> ImportReport:
                return importing.import_leads(engine, label, rows, leads)

            def import_facts(engine: Engine, label: str, rows: Rows) -> ImportReport:
                return importing.import_lifecycle(engine, label, rows, facts)

            self._subscribe("leads", import_leads)
            self._subscribe("events", import_facts)
        self.out = self.broker.publisher(
            f"{p}.out.{{aggregate}}.{{event}}",
            stream=self.stream_out,
            title=f"{p}.out.<aggregate>.<event>",
            description="every huoke domain event, personal data left out (Nats-Msg-Id = the event id)",
            schema=WireEvent,
        )
        self.dead = self.broker.publisher(
            f"{p}.dlq.{{subject}}",
            stream=self.stream_dlq,
            title=f"{p}.dlq.<subject>",
            description="inbound messages or items that could not be used, with the reason",
            schema=DeadLetter,
        )

    async def db(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._db, lambda: fn(*args, **kwargs))

    def _subscribe(self, kind: str, importer: Callable[..., ImportReport]) -> None:
        subject = f"{self.settings.bus_prefix}.in.{kind}"

        async def handle(body: list[Any], msg: NatsMessage) -> None:
            # The next pull overlaps this batch's import (at most IN_FLIGHT batches at once; the
            # store's single thread applies them in the order they came, and each is acknowledged
            # only after its own commit).
            await self._slots().acquire()
            task = asyncio.create_task(self._apply_then_free(subject, importer, list(msg.raw_message)))  # type: ignore[call-overload]
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

        handle.__doc__ = (
            f"{'Leads' if kind == 'leads' else 'Lifecycle events'}: one JSON object or an array, the "
            f"columns of `huoke {kind} import` (and of POST /api/v1/{kind})."
        )
        self.broker.subscriber(
            subject,
            stream=self.stream_in,
            durable=f"{self.settings.bus_prefix}-{kind}",
            pull_sub=PullSub(batch_size=PULL_BATCH, timeout=PULL_TIMEOUT, batch=True),
            config=ConsumerConfig(ack_wait=ACK_WAIT),  # a killed consumer's batch comes back this soon
            ack_policy=AckPolicy.MANUAL,  # each message settled by ``apply``, after the commit
            decoder=_undecoded,  # FastStream's own decoder lets a 3,000-deep array's RecursionError out
            title=subject,
        )(handle)

    def _slots(self) -> asyncio.Semaphore:
        if self._slot is None:
            self._slot = asyncio.Semaphore(IN_FLIGHT)
        return self._slot

    async def _apply_then_free(self, subject: str, importer: Callable[..., ImportReport], raws: list[Any]) -> None:
        try:
            await self.apply(subject, importer, raws)
        except Exception as e:  # unacknowledged: the batch comes back after ACK_WAIT
            print(f"huoke bus: a batch of {subject} failed ({type(e).__name__}: {e}); it will be redelivered",
                  file=sys.stderr)  # fmt: skip
        finally:
            self._slots().release()

    async def drain(self) -> None:
        """Wait for the batches being applied (on shutdown: each is committed and acknowledged)."""
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    async def apply(self, subject: str, importer: Callable[..., ImportReport], raws: list[Any]) -> None:
        """Apply one pulled batch: new messages only, every item validated; the unusable ones to
        the dead-letter subject; remember the ids; then acknowledge. A lifecycle event for a lead
        not captured yet (it may be on its way on the other subject) is redelivered a little
        later, up to ``WAIT_FOR_LEAD`` times, before it is dead-lettered."""
        # One call in the store's thread: batches are checked and applied in the order pulled.
        decided = await self.db(self._decide, subject, importer, raws)
        self.counts["repeats"] += decided.repeats
        self.counts["applied"] += decided.applied
        for letter in decided.dead:
            await self.dead.publish(
                letter.model_dump(by_alias=True),
                subject=f"{self.settings.bus_prefix}.dlq.{subject}",
                headers={"Nats-Msg-Id": f"dlq:{letter.message_id}:{letter.index or 0}"},
                timeout=PUBLISH_TIMEOUT,
            )
        self.counts["dead"] += len(decided.dead)
        if decided.done:
            await self.db(self.inbox.remember, decided.done, subject)
        for m, raw in enumerate(raws):
            if m in decided.later:
                await raw.nak(delay=LEAD_WAIT_DELAY)
            else:
                await raw.ack()

    def _decide(self, subject: str, importer: Callable[..., ImportReport], raws: list[Any]) -> Decided:
        ids = [message_id(r) for r in raws]
        seen = self.inbox.seen(ids)
        decided = Decided()
        rows: list[tuple[int, Any]] = []
        origin: dict[int, tuple[int, int | None, Any]] = {}  # row -> (message, item index, item)
        fresh: dict[int, str] = {}
        for m, (raw, mid) in enumerate(zip(raws, ids, strict=True)):
            if mid in seen or mid in fresh.values():
                decided.repeats += 1
                continue
            fresh[m] = mid
            try:
                body = _body(raw.data)
            except JsonInputError as e:
                decided.dead.append(DeadLetter(subject=subject, message_id=mid, errors=[_problem("message", str(e))]))
                continue
            items = body if isinstance(body, list) else [body]
            for n, item in enumerate(items, 1):
                row = len(rows) + 1
                rows.append((row, item if isinstance(item, dict) else "each item must be a JSON object"))
                origin[row] = (m, n if isinstance(body, list) else None, item)
        if rows:
            problems = self._import(subject, importer, rows, origin, decided, ids)
            for row, errors in sorted(problems.items()):
                m, at, item = origin[row]
                if _waits_for_lead(errors) and _deliveries(raws[m]) < WAIT_FOR_LEAD:
                    decided.later.add(m)
                    continue
                decided.dead.append(
                    DeadLetter(
                        subject=subject,
                        message_id=ids[m],
                        index=at,
                        errors=[_problem(e["field"], _unquoted(e["problem"], item)) for e in errors],
                        item=reference_of(item),
                    )
                )
            decided.applied = sum(1 for row in origin if row not in problems and origin[row][0] not in decided.later)
        decided.done = [mid for m, mid in fresh.items() if m not in decided.later]
        return decided

    def _import(
        self,
        subject: str,
        importer: Callable[..., ImportReport],
        rows: list[tuple[int, Any]],
        origin: dict[int, tuple[int, int | None, Any]],
        decided: Decided,
        ids: list[str],
    ) -> dict[int, list[dict[str, str]]]:
        """Import the rows: each bad one is a problem of its own row. Should an item break the
        import itself, each message is applied on its own, so only the one that breaks is
        dead-lettered (and none while the store does not answer: the batch is redelivered)."""

        def run(part: list[tuple[int, Any]]) -> dict[int, list[dict[str, str]]]:
            report = importer(self.engine, f"bus:{subject}", part)
            problems: dict[int, list[dict[str, str]]] = {}
            for p in report.errors:
                problems.setdefault(p.line, []).append(_problem(p.field, p.problem))
            return problems

        try:
            return run(rows)
        except Exception:
            self._store_answers()  # a store that does not answer: the batch comes back later
        problems: dict[int, list[dict[str, str]]] = {}
        for m in dict.fromkeys(origin[row][0] for row, _ in rows):  # one message's fault: find it
            part = [(row, item) for row, item in rows if origin[row][0] == m]
            try:
                problems.update(run(part))
            except Exception as e:
                self._store_answers()
                for row, _ in part:
                    problems[row] = [_problem("message", f"could not be applied: {type(e).__name__}")]
        return problems

    def _store_answers(self) -> None:
        """Raise if the store does not answer (then nothing is dead-lettered for its sake)."""
        self.engine.leads.recorder.max_notification_id()

    async def relay_once(self) -> int:
        """Publish what the logs hold beyond the recorded positions; the number published."""
        published = 0
        for app in (self.engine.leads, self.engine.journeys, self.engine.deliveries):
            position = await self.db(self.tracker.max_tracking_id, app.name)
            notes = await self.db(
                app.recorder.select_notifications, start=position, limit=RELAY_PAGE, inclusive_of_start=False
            )
            if not notes:
                continue
            messages = [wire_event(app, n) for n in notes]
            await asyncio.gather(
                *(
                    self.out.publish(
                        m.model_dump(by_alias=True),
                        subject=f"{self.settings.bus_prefix}.out.{subject}",
                        headers={"Nats-Msg-Id": m.id},
                        timeout=PUBLISH_TIMEOUT,
                    )
                    for subject, m in messages
                )
            )
            await self.db(self.tracker.insert_tracking, Tracking(app.name, notes[-1].id))
            published += len(notes)
        self.counts["published"] += published
        return published

    async def relay_forever(self, pause: float = 0.2) -> None:
        """Relay until cancelled; a failed round (NATS or the store unreachable) is retried after
        a pause, from the recorded position (nothing is lost, JetStream drops the repeats)."""
        failures = 0
        while True:
            try:
                published = await self.relay_once()
                failures = 0
            except Exception as e:  # the relay outlives any one failure
                failures += 1
                print(f"huoke bus: relay round failed ({type(e).__name__}: {e}); retrying", file=sys.stderr)
                await asyncio.sleep(backoff(failures, timedelta(seconds=pause), RELAY_PAUSE_CAP).total_seconds())
                continue
            if not published:
                await asyncio.sleep(pause)

    def asyncapi(self) -> str:
        spec = AsyncAPI(
            self.broker,
            title="huoke event bus",
            version="1",
            description=__doc__,
        ).to_specification()
        return spec.to_json()

    def app(self) -> FastStream:
        app = FastStream(self.broker, logger=bus_logger())

        @app.after_startup
        async def start_relay() -> None:
            if self.relay:
                self._relay_task = asyncio.create_task(self.relay_forever())

        @app.on_shutdown
        async def stop_relay() -> None:
            task = getattr(self, "_relay_task", None)
            if task is not None:
                task.cancel()
            await self.drain()

        return app

    def close(self) -> None:
        self._db.shutdown(wait=True)
        if self.tracker is not None:
            self.tracker.datastore.close()  # its share of the process's connection pool


async def _undecoded(msg: Any) -> list[bytes]:
    """A pulled batch's bodies as they came: each is parsed by ``_body``, alone and with limits."""
    return [m.data for m in msg.raw_message]
