"""Outgoing webhooks, for systems without NATS: each subscription receives the bus's wire events
(``huoke.event/1``, no personal data) of the types it asked for, as HTTP POSTs signed the
Standard Webhooks way (``webhook-id``, ``webhook-timestamp``, ``webhook-signature: v1,<base64
HMAC-SHA256 of "id.timestamp.body">``).

Delivery is at least once and in log order per subscription: a subscriber that fails (an error,
a timeout, any status but 2xx) is tried again later with exponential back-off (30 s doubling to
an hour), holding its place; after ``MAX_ATTEMPTS`` tries that event goes to the subscription's
dead-letter list (``huoke webhooks dead NAME``, resent with ``huoke webhooks resend``) and
delivery moves on. Receivers drop repeats by ``webhook-id`` (the event id).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol
from uuid import UUID

from engine.application.engine import Engine
from engine.application.events_out import wire_event
from engine.domain.shared.durations import backoff
from engine.domain.shared.errors import HuokeError

MAX_ATTEMPTS = 8
FIRST_BACKOFF = timedelta(seconds=30)
MAX_BACKOFF = timedelta(hours=1)
PAGE = 200
LOGS = ("leads", "journeys", "deliveries")


class WebhookTransport(Protocol):
    """How deliveries reach subscribers (``adapters.http_client.GuardedPoster``): URLs that are
    data, so an address the lender did not allow is refused (a ``HuokeError``)."""

    def check(self, url: str) -> None:
        """Raise a ``HuokeError`` saying why ``url`` may not be called."""

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        """POST; the HTTP status (``OSError`` when nothing answered)."""


#: The vault key that seals subscriptions' signing secrets (not a lead's key: never erased).
WEBHOOK_SECRETS_KEY = UUID(int=2)
SEALED_PREFIX = "sealed:"


class WebhookError(HuokeError):
    """A subscription cannot be made or found."""


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def sign(secret: str, event_id: str, timestamp: int, body: bytes) -> str:
    """The Standard Webhooks signature of one delivery."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{event_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def matches(patterns: list[str], event_type: str) -> bool:
    """``Lead.StageChanged`` matches ``Lead.StageChanged``, ``Lead.*`` and ``*``."""
    return any(p in ("*", event_type) or (p.endswith(".*") and event_type.startswith(p[:-1])) for p in patterns)


@dataclass
class Webhooks:
    """Subscriptions (huoke's own tables) and their delivery from the event logs."""

    engine: Engine | None
    meta: Any
    #: How deliveries are POSTed (None: only managing stored secrets, nothing is sent).
    transport: WebhookTransport | None = None
    #: Seals the signing secrets at rest under a key wrapped by the master key (None: plain,
    #: when personal data is not encrypted either).
    vault: Any = None

    @property
    def http(self) -> WebhookTransport:
        if self.transport is None:
            raise WebhookError("webhooks need an outbound HTTP client to check and call subscribers")
        return self.transport

    def add(self, name: str, url: str, events: list[str], from_start: bool = False) -> str:
        """A subscription; its signing secret is returned (shown once to the operator). A URL
        that resolves to an internal address is refused (``HUOKE_OUTBOUND_ALLOW``)."""
        try:
            self.http.check(url)
        except HuokeError as e:
            raise WebhookError(str(e)) from None
        if not events:
            raise WebhookError("name the event types to send, e.g. Lead.StageChanged, Delivery.* or *")
        if self.meta.query("SELECT name FROM {huoke_webhooks} WHERE name = ?", (name,)):
            raise WebhookError(f"a webhook is already named {name!r}")
        positions = dict.fromkeys(LOGS, 0) if from_start else self._ends()
        secret = new_secret()
        stored = self._sealed(name, secret)
        self.meta.query(
            "INSERT INTO {huoke_webhooks} VALUES (?, ?, ?, ?, ?, 0, '', '', ?)",
            (name, url, json.dumps(events), stored, json.dumps(positions), datetime.now().astimezone().isoformat()),
        )
        return secret

    def _sealed(self, name: str, secret: str) -> str:
        """How a signing secret is stored: sealed when there is a vault."""
        if self.vault is None:
            return secret
        blob = self.vault.seal(WEBHOOK_SECRETS_KEY, secret.encode(), f"webhook|{name}".encode())
        return SEALED_PREFIX + base64.urlsafe_b64encode(blob).decode()

    def _secret(self, hook: dict[str, Any]) -> str:
        stored = str(hook["secret"])
        if not stored.startswith(SEALED_PREFIX):
            return stored  # stored before secrets were sealed (``db init`` seals them)
        if self.vault is None:
            raise WebhookError("webhook secrets are sealed: the master key is needed to sign deliveries")
        blob = base64.urlsafe_b64decode(stored.removeprefix(SEALED_PREFIX))
        opened = self.vault.open(WEBHOOK_SECRETS_KEY, blob, f"webhook|{hook['name']}".encode())
        if opened is None:  # pragma: no cover - the webhook key is never erased
            raise WebhookError(f"the signing secret of {hook['name']!r} cannot be opened")
        return bytes(opened).decode()

    def seal_stored_secrets(self) -> int:
        """Seal every signing secret stored in plain (stores from before); the number sealed."""
        if self.vault is None:
            return 0
        rows = self.meta.query("SELECT name, secret FROM {huoke_webhooks}")
        plain = [r for r in rows if not str(r["secret"]).startswith(SEALED_PREFIX)]
        for r in plain:
            self.meta.query(
                "UPDATE {huoke_webhooks} SET secret = ? WHERE name = ?",
                (self._sealed(r["name"], r["secret"]), r["name"]),
            )
        return len(plain)

    @property
    def logs(self) -> Engine:
        """The engine whose logs are delivered (commands that only manage subscriptions have none)."""
        if self.engine is None:
            raise WebhookError("delivering webhooks needs the event store")
        return self.engine

    def _ends(self) -> dict[str, int]:
        return {log: getattr(self.logs, log).recorder.max_notification_id() or 0 for log in LOGS}

    def subscriptions(self) -> list[dict[str, Any]]:
        rows = self.meta.query(
            "SELECT w.name, w.url, w.events, w.attempts, w.next_try, w.last_error, w.created_at, "
            "(SELECT COUNT(*) FROM {huoke_webhook_dead} d WHERE d.name = w.name) AS dead "
            "FROM {huoke_webhooks} w ORDER BY w.name"
        )
        return [{**r, "events": json.loads(r["events"]), "dead": int(r["dead"])} for r in rows]

    def remove(self, name: str) -> None:
        self._get(name)
        self.meta.query("DELETE FROM {huoke_webhook_dead} WHERE name = ?", (name,))
        self.meta.query("DELETE FROM {huoke_webhooks} WHERE name = ?", (name,))

    def dead(self, name: str) -> list[dict[str, Any]]:
        self._get(name)
        rows = self.meta.query(
            "SELECT event_id, at, error, body FROM {huoke_webhook_dead} WHERE name = ? ORDER BY at", (name,)
        )
        return [{**r, "body": json.loads(r["body"])} for r in rows]

    def resend(self, name: str, now: datetime) -> tuple[int, int]:
        """Try every dead letter of ``name`` once more; (delivered, still failing)."""
        hook = self._get(name)
        done = failed = 0
        for letter in self.dead(name):
            body = json.dumps(letter["body"], ensure_ascii=False).encode()
            error = self._send(hook, letter["event_id"], body, now)
            if error:
                failed += 1
                continue
            self.meta.query(
                "DELETE FROM {huoke_webhook_dead} WHERE name = ? AND event_id = ?", (name, letter["event_id"])
            )
            done += 1
        return done, failed

    def _get(self, name: str) -> dict[str, Any]:
        rows = self.meta.query("SELECT * FROM {huoke_webhooks} WHERE name = ?", (name,))
        if not rows:
            raise WebhookError(f"no webhook named {name!r} (huoke webhooks list)")
        return dict(rows[0])

    def _send(self, hook: dict[str, Any], event_id: str, body: bytes, now: datetime) -> str:
        """POST one event; an error text, or '' when the subscriber took it."""
        timestamp = int(now.timestamp())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "huoke-webhooks/1",
            "webhook-id": event_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(self._secret(hook), event_id, timestamp, body),
        }
        try:
            status = self.http.post(hook["url"], body, headers)
        except (OSError, ValueError, HuokeError) as e:
            return f"{type(e).__name__}: {e}"[:300]
        return "" if 200 <= status < 300 else f"HTTP {status}"

    def deliver(self, now: datetime) -> dict[str, int]:
        """One pass over every subscription that is due at ``now``; counts of what happened."""
        counts = {"delivered": 0, "failed": 0, "dead": 0}
        for row in self.meta.query("SELECT name FROM {huoke_webhooks} ORDER BY name"):
            hook = self._get(row["name"])
            if hook["next_try"] and datetime.fromisoformat(hook["next_try"]) > now:
                continue
            self._deliver_one(hook, now, counts)
        return counts

    def _deliver_one(self, hook: dict[str, Any], now: datetime, counts: dict[str, int]) -> None:
        positions: dict[str, int] = json.loads(hook["positions"])
        patterns: list[str] = json.loads(hook["events"])
        attempts = int(hook["attempts"])
        for log in LOGS:
            app = getattr(self.logs, log)
            while notes := app.recorder.select_notifications(
                start=positions.get(log, 0), limit=PAGE, inclusive_of_start=False
            ):
                for note in notes:
                    if matches(patterns, note.topic.partition(":")[2]):
                        _, message = wire_event(app, note)
                        body = message.model_dump_json(by_alias=True).encode()
                        error = self._send(hook, message.id, body, now)
                        if error:
                            attempts += 1
                            counts["failed"] += 1
                            if attempts < MAX_ATTEMPTS:  # hold the place; try again after a pause
                                wait = backoff(attempts - 1, FIRST_BACKOFF, MAX_BACKOFF)
                                self._save(hook["name"], positions, attempts, (now + wait).isoformat(), error)
                                return
                            self.meta.query(
                                "INSERT INTO {huoke_webhook_dead} VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                                (hook["name"], message.id, now.isoformat(), error, body.decode()),
                            )
                            counts["dead"] += 1
                        else:
                            counts["delivered"] += 1
                        attempts = 0
                    positions[log] = note.id
                self._save(hook["name"], positions, attempts, "", "")

    def _save(self, name: str, positions: dict[str, int], attempts: int, next_try: str, error: str) -> None:
        self.meta.query(
            "UPDATE {huoke_webhooks} SET positions = ?, attempts = ?, next_try = ?, "
            "last_error = CASE WHEN ? = '' THEN last_error ELSE ? END WHERE name = ?",
            (json.dumps(positions), attempts, next_try, error, error, name),
        )
