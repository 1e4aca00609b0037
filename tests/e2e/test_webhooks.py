"""Outgoing webhooks to a real HTTP server on loopback (SQLite and PostgreSQL): the subscribed
event types only, signed (Standard Webhooks), in log order; a failing subscriber is retried
with back-off on its own clock, holding its place, and an event it never takes goes to its
dead-letter list, from which it can be resent."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import pytest

from engine.adapters.clock import VirtualClock
from engine.adapters.http_client import GuardedPoster, OutboundPolicy
from engine.adapters.lead_rows import LeadRow
from engine.application.engine import Engine
from engine.application.webhooks import FIRST_BACKOFF, MAX_ATTEMPTS, Webhooks
from engine.bootstrap import meta_for
from engine.domain.shared.errors import HuokeError
from tests.conftest import POSTGRES_URL, MakeEngine, base_settings


class Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []
    status: ClassVar[int] = 204

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.status < 300:
            self.received.append({"headers": {k.lower(): v for k, v in self.headers.items()}, "body": body})
        self.send_response(self.status)
        if 300 <= self.status < 400:
            self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    Receiver.received, Receiver.status = [], 204
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks"
    server.shutdown()
    server.server_close()


@pytest.fixture
def hooks(make_engine: MakeEngine, tmp_path: Path, store: str, request: Any) -> Webhooks:
    engine = make_engine()
    overrides = {}
    if store == "postgres":
        overrides["database_url"] = f"{POSTGRES_URL}?schema={request.getfixturevalue('pg_schema')}"
    # The receiver runs on loopback: the one internal address these subscriptions may reach.
    return Webhooks(
        engine, meta_for(base_settings(tmp_path, **overrides)), GuardedPoster(OutboundPolicy.parse("127.0.0.1"))
    )


def capture(engine: Engine, *ns: int) -> None:
    tz = ZoneInfo("Asia/Shanghai")
    rows = [{"source_channel": "web_form", "external_id": f"w{n}", "name": f"Lead {n}", "phone": f"138001370{n:02d}",
             "consent_sms": "true"} for n in ns]  # fmt: skip
    engine.leads.capture_leads([LeadRow.model_validate(r).to_command("CN", tz, f"t:{r['external_id']}") for r in rows])


def verify(secret: str, delivery: dict[str, Any]) -> bool:
    h = delivery["headers"]
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{h['webhook-id']}.{h['webhook-timestamp']}.".encode() + delivery["body"]
    expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return hmac.compare_digest(expected, h["webhook-signature"])


def test_subscribed_events_arrive_signed_once_in_order(hooks: Webhooks, receiver: str, clock: VirtualClock) -> None:
    capture(hooks.logs, 1)  # before the subscription: not sent
    secret = hooks.add("crm", receiver, ["Lead.Captured"])
    capture(hooks.logs, 2, 3)
    counts = hooks.deliver(clock.now())
    assert counts == {"delivered": 2, "failed": 0, "dead": 0}
    bodies = [json.loads(d["body"]) for d in Receiver.received]
    assert [b["type"] for b in bodies] == ["Lead.Captured"] * 2
    assert [b["data"]["source"]["external_id"] for b in bodies] == ["w2", "w3"]  # in log order
    assert all(verify(secret, d) for d in Receiver.received)
    assert not verify("whsec_" + base64.b64encode(b"x" * 24).decode(), Receiver.received[0])
    assert [d["headers"]["webhook-id"] for d in Receiver.received] == [b["id"] for b in bodies]
    assert "13800137002" not in json.dumps(bodies)  # no personal data
    assert hooks.deliver(clock.now()) == {"delivered": 0, "failed": 0, "dead": 0}  # nothing twice


def test_a_failing_subscriber_backs_off_keeps_its_place_then_dead_letters(
    hooks: Webhooks, receiver: str, clock: VirtualClock
) -> None:
    hooks.add("warehouse", receiver, ["Lead.Captured"])
    capture(hooks.logs, 1, 2)
    Receiver.status = 503
    now = clock.now()
    assert hooks.deliver(now)["failed"] == 1
    assert hooks.deliver(now + FIRST_BACKOFF - timedelta(seconds=1))["failed"] == 0  # waits
    assert hooks.deliver(now + FIRST_BACKOFF)["failed"] == 1  # tried again, after the pause
    [hook] = hooks.subscriptions()
    assert hook["attempts"] == 2 and hook["last_error"] == "HTTP 503"
    Receiver.status = 204  # back: the held event first, then the next
    assert hooks.deliver(now + timedelta(hours=1))["delivered"] == 2
    assert len(Receiver.received) == 2
    # Down for good: after MAX_ATTEMPTS tries the event is a dead letter and the next one goes.
    capture(hooks.logs, 3, 4)
    Receiver.status = 500
    at = now + timedelta(hours=2)
    for _ in range(MAX_ATTEMPTS):
        hooks.deliver(at)
        at += timedelta(hours=2)
    [letter] = hooks.dead("warehouse")
    assert letter["error"] == "HTTP 500" and letter["body"]["type"] == "Lead.Captured"
    Receiver.status = 204
    assert hooks.resend("warehouse", at) == (1, 0) and hooks.dead("warehouse") == []
    hooks.deliver(at)
    assert len(Receiver.received) == 4 and len({d["headers"]["webhook-id"] for d in Receiver.received}) == 4


INTERNAL = [
    ("http://127.0.0.1:5432/", "loopback"),
    ("http://localhost:8222/varz", "loopback"),  # the NATS monitor
    ("http://169.254.169.254/latest/meta-data/", "link-local"),  # cloud metadata
    ("http://[::ffff:169.254.169.254]/", "link-local"),
    ("http://2130706433/", "loopback"),  # 127.0.0.1 as a decimal number
    ("http://0x7f.1/", "loopback"),
    ("http://10.1.2.3/hook", "private"),
    ("http://[::1]:8080/", "loopback"),
    ("http://224.0.0.1/", "multicast"),
    ("http://0.0.0.0:8080/", "unspecified"),
    ("http://metadata.google.internal/", "does not resolve"),
    ("ftp://example.com/", "is not an http\\(s\\) URL"),
]


@pytest.mark.parametrize(("url", "why"), INTERNAL)
def test_a_subscription_to_an_internal_address_is_refused(
    make_engine: MakeEngine, tmp_path: Path, url: str, why: str
) -> None:
    hooks = Webhooks(make_engine(), meta_for(base_settings(tmp_path)), GuardedPoster())
    with pytest.raises(HuokeError, match=why):
        hooks.add("crm", url, ["*"])
    assert hooks.subscriptions() == []


def test_an_allowed_internal_network_may_be_subscribed(make_engine: MakeEngine, tmp_path: Path) -> None:
    hooks = Webhooks(
        make_engine(),
        meta_for(base_settings(tmp_path)),
        GuardedPoster(OutboundPolicy.parse("10.0.0.0/8, crm.internal")),
    )
    hooks.add("crm", "http://10.1.2.3/hook", ["*"])
    assert [h["name"] for h in hooks.subscriptions()] == ["crm"]


def test_delivery_checks_the_address_again_and_never_follows_a_redirect(
    hooks: Webhooks, receiver: str, clock: VirtualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    hooks.add("crm", receiver, ["Lead.Captured"])
    capture(hooks.logs, 1)
    Receiver.status = 302  # a redirect towards the metadata service: the answer, never followed
    assert hooks.deliver(clock.now()) == {"delivered": 0, "failed": 1, "dead": 0}
    assert hooks.subscriptions()[0]["last_error"] == "HTTP 302"
    # A name that resolved to a public address when subscribed now resolves to loopback (DNS
    # rebinding): refused before any request is made.
    answers = {"hooks.example": "93.184.216.34"}
    real = socket.getaddrinfo

    def fake_dns(host: str, *args: Any, **kwargs: Any) -> Any:
        return real(answers.get(host, host), *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake_dns)
    public = Webhooks(hooks.engine, hooks.meta, GuardedPoster())  # no internal address allowed
    port = receiver.split(":")[2].split("/", maxsplit=1)[0]
    public.add("rebound", f"http://hooks.example:{port}/hooks", ["Lead.Captured"])
    answers["hooks.example"] = "127.0.0.1"
    capture(hooks.logs, 2)
    Receiver.status = 204
    clock.advance_to(clock.now() + timedelta(hours=2))
    public.deliver(clock.now())
    rebound = next(h for h in public.subscriptions() if h["name"] == "rebound")
    assert "hooks.example resolves to 127.0.0.1 (loopback)" in rebound["last_error"]
    assert Receiver.received == []


def test_signing_secrets_are_sealed_at_rest(
    make_engine: MakeEngine, tmp_path: Path, receiver: str, clock: VirtualClock
) -> None:
    engine = make_engine()
    meta = meta_for(base_settings(tmp_path))
    plain = Webhooks(engine, meta, GuardedPoster(OutboundPolicy.parse("127.0.0.1")))  # as huoke stored them before
    old_secret = plain.add("old", receiver, ["Lead.Captured"])
    hooks = Webhooks(engine, meta, GuardedPoster(OutboundPolicy.parse("127.0.0.1")), vault=engine.leads.vault)
    secret = hooks.add("new", receiver, ["Lead.Captured"])
    assert hooks.seal_stored_secrets() == 1 and hooks.seal_stored_secrets() == 0  # what db init does
    stored = b"".join(p.read_bytes() for p in (tmp_path / "data").iterdir() if p.is_file())
    for s in (secret, old_secret):
        assert s.encode() not in stored and s.removeprefix("whsec_").encode() not in stored
    capture(engine, 1)
    assert hooks.deliver(clock.now())["delivered"] == 2
    by_key = {d["headers"]["webhook-signature"]: d for d in Receiver.received}
    assert len(by_key) == 2 and sum(verify(s, d) for s in (secret, old_secret) for d in Receiver.received) == 2
