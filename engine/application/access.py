"""API keys and the audit trail: the use cases behind ``huoke api-keys``, ``huoke audit`` and
the HTTP API's authentication. Its own event log (store ``access``)."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from engine.application.ports import Clock
from engine.application.projecting import matching_notifications
from engine.domain.access.api_key import KEY_PREFIX, ApiKey, AuditEntry, Role, key_hash, key_id
from engine.domain.shared.errors import AccessError
from engine.eventstore.saving import fresh_get, retry_conflicts, save_batch
from engine.eventstore.values import StoreApplication

KEY_TOPICS = (ApiKey.Created.TOPIC,)  # type: ignore[attr-defined]
AUDIT_TOPICS = (AuditEntry.Recorded.TOPIC,)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Caller:
    """Who is calling: the key's name and role."""

    key_id: UUID
    name: str
    role: Role


class Access(StoreApplication):
    """API keys (created, revoked, checked) and the audit entries of what callers changed."""

    name = "Access"
    snapshotting_intervals: ClassVar[dict[type[Any], int]] = {}

    def __init__(self, env: dict[str, str], clock: Clock) -> None:
        self.clock = clock
        super().__init__(env)

    def create_key(self, name: str, role: str, by: str) -> tuple[ApiKey, str]:
        """A new key (the text is returned once; only its hash is kept)."""
        name = name.strip()
        if any(k.name == name and k.active for k in self.keys()):
            raise AccessError(f"an active API key is already named {name!r}: revoke it or choose another name")
        text = KEY_PREFIX + secrets.token_urlsafe(32)
        key = ApiKey(name=name, role=role, key_sha256=key_hash(text), hint=text[:7], by=by, at=self.clock.now())
        self.save(key)
        return key, text

    def keys(self) -> list[ApiKey]:
        """Every key ever created, oldest first (revoked ones included)."""
        return [fresh_get(self, n.originator_id) for n in self._notes(KEY_TOPICS)]

    def key_rows(self) -> list[dict[str, str]]:
        """Every key as ``huoke api-keys list`` and its JSON show it (never the key itself)."""
        return [
            {
                "id": str(k.id),
                "name": k.name,
                "role": str(k.role),
                "hint": k.hint,
                "created_by": k.created_by,
                "created_at": k.created_at.isoformat(),
                "revoked_at": k.revoked_at.isoformat() if k.revoked_at else "",
            }
            for k in self.keys()
        ]

    def find_key(self, ref: str) -> ApiKey:
        """An active key by name, or any key by id."""
        keys = self.keys()
        found = [k for k in keys if str(k.id) == ref] or [k for k in keys if k.name == ref and k.active]
        if not found:
            raise AccessError(f"no active API key named {ref!r} (huoke api-keys list)")
        return found[0]

    def revoke(self, ref: str, by: str, reason: str) -> ApiKey:
        """Revoke a key by name or id: the next call with it is refused, in every process."""
        key = self.find_key(ref)
        key.revoke(by, reason, self.clock.now())
        self.save(key)
        return key

    def authenticate(self, text: str) -> Caller | None:
        """The caller a presented key stands for; None for an unknown or revoked key."""
        if not text.startswith(KEY_PREFIX) or len(text) > 100:
            return None
        try:  # read as committed now: a key revoked by another process is refused at once
            key: ApiKey = fresh_get(self, key_id(text))
        except AggregateNotFoundError:
            return None
        if not key.active or not secrets.compare_digest(key.key_sha256, key_hash(text)):
            return None
        return Caller(key.id, key.name, key.role)

    def session_caller(self, key: UUID, issued: datetime) -> Caller | None:
        """The caller of a dashboard session opened at ``issued``, read fresh; None when the key
        is revoked or was signed out of since."""
        try:
            found: ApiKey = fresh_get(self, key)
        except AggregateNotFoundError:
            return None
        return Caller(found.id, found.name, found.role) if found.session_open(issued) else None

    def sign_out(self, key: UUID, at: datetime) -> None:
        """End every dashboard session of the key opened until ``at``."""

        def attempt() -> None:
            found: ApiKey = fresh_get(self, key)
            found.sign_out(at)
            save_batch(self, [found])

        with contextlib.suppress(AggregateNotFoundError):
            retry_conflicts(self, attempt)

    def caller(self, key: UUID) -> Caller | None:
        """The caller of the key with id ``key``, read fresh; None when unknown or revoked (a
        dashboard session ends at once when its key is revoked)."""
        try:
            found: ApiKey = fresh_get(self, key)
        except AggregateNotFoundError:
            return None
        return Caller(found.id, found.name, found.role) if found.active else None

    def record_as(self, name: str, role: str, action: str, target: str, status: int, client: str) -> None:
        """An audit entry for an action taken outside the API (the CLI: who ran it)."""
        self.save(
            AuditEntry(
                key_name=name, role=role, action=action, target=target[:200], status=status, client=client[:64],
                at=self.clock.now(),
            )
        )  # fmt: skip

    def record(self, caller: Caller | None, action: str, target: str, status: int, client: str) -> None:
        """An audit entry for one state-changing call."""
        entry = AuditEntry(
            key_name=caller.name if caller else "",
            role=str(caller.role) if caller else "",
            action=action,
            target=target[:200],
            status=status,
            client=client[:64],
            at=self.clock.now(),
        )
        self.save(entry)

    def audit(self, since: datetime | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """The latest ``limit`` audit entries (since ``since``), oldest first."""
        entries = []
        for n in self._notes(AUDIT_TOPICS):
            e: AuditEntry.Recorded = self.mapper.to_domain_event(n)  # type: ignore[assignment]
            if since is None or e.at >= since:
                entries.append(
                    {
                        "at": e.at.isoformat(),
                        "key": e.key_name,
                        "role": e.role,
                        "action": e.action,
                        "target": e.target,
                        "status": e.status,
                        "client": e.client,
                    }
                )
        return entries[-limit:]

    def _notes(self, topics: tuple[str, ...]) -> Iterator[Any]:
        return matching_notifications(self.recorder, topics)
