"""What every HTTP request meets before any route, authentication included: a cap on the body
(a 200 MB upload is refused with 413 before a byte of it is kept, where the server used to read
it whole first) and the headers every page and document carries (never framed by another site,
no referrer leaking a link's token, no content sniffing)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

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
        body = json.dumps(
            {
                "type": "about:blank",
                "title": "Content Too Large",
                "status": 413,
                "detail": f"request bodies are at most {self.max_body:,} bytes",
            }
        ).encode()
        await _with_headers(send)(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
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
