"""An API key: a name, a role, the key's hash (the key itself is shown once and never stored),
revocable. Its id derives from the hash, so a presented key is found without an index."""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from engine.domain.shared.errors import AccessError
from engine.domain.shared.topics import keep_topics

#: Namespace of key ids (uuid5 of the key's hash).
KEY_NAMESPACE = UUID("7f0c5a52-3b1e-4d8e-9f55-4e0d8a1c2b6a")
#: What every key starts with, so a leaked one is easy to find in code and logs.
KEY_PREFIX = "hk_"


class Role(StrEnum):
    """What a key may do (README, "HTTP API"): each role's routes are fixed in the API."""

    ADMIN = "admin"
    MARKETER = "marketer"
    AGENT = "agent"
    INTEGRATOR = "integrator"


def key_hash(key: str) -> str:
    """SHA-256 of a key: keys are 256 random bits, so a plain hash cannot be reversed."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_id(key: str) -> UUID:
    """The id of the key whose text is ``key`` (whether or not it exists)."""
    return uuid5(KEY_NAMESPACE, key_hash(key))


class ApiKey(Aggregate):
    """One API key's life: created with a role, maybe revoked."""

    class Created(Aggregate.Created):
        name: str
        role: str
        key_sha256: str
        hint: str
        by: str
        at: datetime

    class Revoked(Aggregate.Event):
        by: str
        reason: str
        at: datetime

    class SignedOut(Aggregate.Event):
        """Every dashboard session the key opened until ``at`` is over (a sign-out)."""

        at: datetime

    @staticmethod
    def create_id(name: str, role: str, key_sha256: str, hint: str, by: str, at: datetime) -> UUID:
        return uuid5(KEY_NAMESPACE, key_sha256)

    @event(Created)
    def __init__(self, name: str, role: str, key_sha256: str, hint: str, by: str, at: datetime) -> None:
        if not name.strip():
            raise AccessError("an API key needs a name (who or what uses it)")
        if role not in set(Role):
            raise AccessError(f"unknown role {role!r}: use one of {', '.join(Role)}")
        self.name = name
        self.role = Role(role)
        self.key_sha256 = key_sha256
        #: The key's first characters, to tell keys apart in a list.
        self.hint = hint
        self.created_by = by
        self.created_at = at
        self.revoked_at: datetime | None = None
        self.signed_out_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def revoke(self, by: str, reason: str, at: datetime) -> None:
        if not self.active:
            raise AccessError(f"API key {self.name!r} is already revoked")
        self._revoked(by=by, reason=reason, at=at)

    @event(Revoked)
    def _revoked(self, by: str, reason: str, at: datetime) -> None:
        self.revoked_at = at

    def sign_out(self, at: datetime) -> None:
        """End the key's dashboard sessions opened until now (in every browser)."""
        self._signed_out(at=at)

    @event(SignedOut)
    def _signed_out(self, at: datetime) -> None:
        self.signed_out_at = at

    def session_open(self, issued: datetime) -> bool:
        """Whether a session issued at ``issued`` is still good: the key active, not signed out since."""
        return self.active and (self.signed_out_at is None or issued > self.signed_out_at)


class AuditEntry(Aggregate):
    """One state-changing call from outside: who (key name, role), what (action, target), when,
    from where, and how it ended (the HTTP status)."""

    class Recorded(Aggregate.Created):
        key_name: str
        role: str
        action: str
        target: str
        status: int
        client: str
        at: datetime

    @event(Recorded)
    def __init__(
        self, key_name: str, role: str, action: str, target: str, status: int, client: str, at: datetime
    ) -> None:
        self.key_name = key_name
        self.role = role
        self.action = action
        self.target = target
        self.status = status
        self.client = client
        self.at = at


keep_topics("engine.domain.access.api_key", ApiKey, AuditEntry)
