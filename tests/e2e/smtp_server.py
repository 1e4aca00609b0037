"""A real SMTP server (aiosmtpd) on loopback that records what it accepts, and the other
loopback servers tests and benchmarks talk to."""

from __future__ import annotations

import json
import re
import socket
import threading
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """``app`` (ASGI) served by uvicorn on a free loopback port in a background thread, as a
    client reaches ``huoke serve``; yields the base URL and stops the server on leaving."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        thread.join(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(5)


@dataclass
class RecordingHandler:
    """Accepts mail; ``reject`` maps a recipient to the reply its RCPT gets (e.g. "550 …")."""

    received: list[EmailMessage] = field(default_factory=list)
    reject: dict[str, str] = field(default_factory=dict)
    greylist_once: set[str] = field(default_factory=set)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address in self.greylist_once:
            self.greylist_once.discard(address)
            return "451 4.7.1 greylisted, try again later"
        if address in self.reject:
            return self.reject[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(message_from_bytes(envelope.content, policy=policy.default))  # type: ignore[arg-type]
        return "250 Message accepted for delivery"


@contextmanager
def smtp_server(handler: RecordingHandler) -> Iterator[int]:
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


class Sink:
    """An SMTP server that keeps the recipient and Message-ID of everything it accepted."""

    def __init__(self) -> None:
        self.got: list[tuple[str, str]] = []
        self.ids: list[str] = []
        #: Recipient -> the tracked links (``/l/…``) of the messages they got, in arrival order.
        self.links: dict[str, list[str]] = {}
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)  # type: ignore[arg-type]
        message_id = str(message["Message-ID"]).strip().strip("<>")
        body = message.get_body(("plain",))  # type: ignore[attr-defined]
        links = re.findall(r"https?://\S+?/l/[A-Za-z0-9_-]{31}", body.get_content() if body is not None else "")
        with self.lock:
            to = str(message["To"]).strip()
            self.got.append((to, message_id))
            self.ids.append(message_id)
            self.links.setdefault(to, []).extend(links)
        return "250 OK"

    def by_recipient(self) -> Counter[str]:
        with self.lock:
            return Counter(to for to, _ in self.got)

    def recipients(self) -> list[str]:
        with self.lock:
            return [to for to, _ in self.got]

    def message_ids(self) -> list[str]:
        with self.lock:
            return list(self.ids)


def search_api(sink: Sink) -> type[BaseHTTPRequestHandler]:
    class MailpitSearch(BaseHTTPRequestHandler):
        """GET /api/v1/search?query=message-id:<id> as Mailpit answers it (count only)."""

        def do_GET(self) -> None:
            query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)["query"][0]
            wanted = query.removeprefix("message-id:")
            with sink.lock:
                count = sink.ids.count(wanted)
            body = json.dumps({"messages_count": count, "total": len(sink.ids)}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    return MailpitSearch


@pytest.fixture
def mail_server() -> Iterator[tuple[Sink, int, str]]:
    """A Sink on loopback and its Mailpit-style search API (in-doubt sends are looked up there)."""
    sink = Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    api = ThreadingHTTPServer(("127.0.0.1", 0), search_api(sink))
    thread = threading.Thread(target=api.serve_forever, daemon=True)
    thread.start()
    yield sink, port, f"http://127.0.0.1:{api.server_address[1]}"
    api.shutdown()
    api.server_close()
    controller.stop()
