"""What every HTTP request meets before any route, authentication included: a cap on the body
(a 200 MB upload is refused with 413 before a byte of it is kept, where the server used to read
it whole first), the headers every page and document carries (never framed by another site,
no referrer leaking a link's token, no content sniffing), and 503 with Retry-After at once while
the store does not answer."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, MutableMapping
from http import HTTPStatus
from typing import Any

from engine.adapters.store_watch import RETRY_AFTER, StoreWatch

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The largest request body huoke reads (a batch of 1,000 leads is well under 1 MiB).
MAX_BODY = 4 * 1024 * 1024
#: Headers on every response (a route's own, such as the dashboard's fuller policy, win).
SECURITY_HEADERS = {
    b"x-frame-options": b"DENY",
    b"content-security-policy": b"frame-ancestors 'none'",
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"same-origin",  # never to another site; huoke's own forms keep their Origin
}


class Edge:
    """ASGI middleware: the body cap and the security headers."""

    def __init__(self, app: App, max_body: int = MAX_BODY) -> None:
        self.app, self.max_body = app, max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit() or int(length) > self.max_body:
                await self._too_large(send)
                return
        elif scope["method"] in ("POST", "PUT", "PATCH"):  # no length given: read it, up to the cap
            body = await self._read_capped(receive)
            if body is None:
                await self._too_large(send)
                return
            receive = _replay(body)
        await self.app(scope, receive, _with_headers(send))

    async def _read_capped(self, receive: Receive) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b"".join(chunks)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return None
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    async def _too_large(self, send: Send) -> None:
        detail = f"request bodies are at most {self.max_body:,} bytes"
        await _send_body(
            send, 413, json.dumps(problem_document(413, detail)).encode(), PROBLEM, [(b"connection", b"close")]
        )


def problem_document(status: int, detail: str, **extra: Any) -> dict[str, Any]:
    """An RFC 9457 problem document: every error huoke's HTTP side answers has this shape."""
    return {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status, "detail": detail, **extra}


#: The media type of a problem document.
PROBLEM = "application/problem+json"


async def _send_body(send: Send, status: int, body: bytes, kind: str, headers: list[tuple[bytes, bytes]]) -> None:
    """A whole response from the edge (no route reached), with the security headers."""
    await _with_headers(send)(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", kind.encode()), (b"content-length", str(len(body)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


def _with_headers(send: Send) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            present = {k.lower() for k, _ in message.get("headers", [])}
            extra = [(k, v) for k, v in SECURITY_HEADERS.items() if k not in present]
            message["headers"] = [*message.get("headers", []), *extra]
        await send(message)

    return wrapped


#: Seconds between looks at the watch while a request is under way.
POLL = 0.25
#: What answers without the store.
STORELESS = ("/health", "/openapi.json", "/asyncapi", "/dashboard/static/")


class StoreGate:
    """ASGI middleware: while the store does not answer, every request that needs it gets 503
    with ``Retry-After`` at once (a problem document under /api, a short page elsewhere) instead
    of waiting on the connection pool; a request that meets the outage first gets the same."""

    def __init__(self, app: App, watch: StoreWatch, unreachable: Callable[[BaseException], bool]) -> None:
        self.app, self.watch, self.unreachable = app, watch, unreachable

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(STORELESS):
            await self.app(scope, receive, send)
            return
        if self.watch.down:
            await self._unavailable(scope, send)
            return
        started = False

        async def tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            if self.watch.probe is None:  # nothing notices an outage mid-request: just run it
                await self.app(scope, receive, tracking)
            elif not await self._unless_the_store_goes(self.app(scope, receive, tracking), lambda: started):
                await self._unavailable(scope, send)
        except Exception as e:
            if not self.unreachable(e):
                raise
            self.watch.failed()
            if started:
                raise
            await self._unavailable(scope, send)

    async def _unless_the_store_goes(self, call: Awaitable[None], started: Callable[[], bool]) -> bool:
        """Run ``call``; False if it was given up because the watch saw the store go before the
        response started. A request under way then is answered 503 at once, not after the pool's
        retries (the route's thread finishes on its own; a write it makes later is one the
        client's retry finds done: every API write is idempotent)."""
        task = asyncio.ensure_future(call)
        while not task.done():
            await asyncio.wait({task}, timeout=POLL)
            if not task.done() and not started() and self.watch.down:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
                return False
        task.result()  # the route's own error, if any
        return True

    async def _unavailable(self, scope: Scope, send: Send) -> None:
        detail = "the store does not answer; try again shortly"
        if scope["path"].startswith("/api/"):
            body, kind = json.dumps(problem_document(503, detail)).encode(), PROBLEM
        else:
            body, kind = (
                f"<!doctype html><title>Try again shortly</title><p>{detail}.</p>".encode(),
                "text/html; charset=utf-8",
            )
        await _send_body(send, 503, body, kind, [(b"retry-after", str(RETRY_AFTER).encode())])
