"""The dashboard's sessions: a marketer or admin signs in with an API key once (never kept);
the browser then holds a cookie naming the key's id and a token signed with the link key,
valid within a day. Every request checks it and re-reads the key, so a revoked key's session
ends at once, and a signed-out session stays out."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from engine.application.access import Access, Caller
from engine.application.delivery.links import LinkCheck, LinkKeys, check_token, issued_at, make_token
from engine.domain.access.api_key import Role

#: The roles that may open the dashboard.
ROLES = (Role.MARKETER, Role.ADMIN)


def open_session(keys: LinkKeys, caller: Caller, now: datetime) -> str:
    """The cookie value of a session for ``caller`` starting ``now``."""
    return f"{caller.key_id}:{make_token(keys, 'dashboard', caller.key_id, 'session', now)}"


def session_caller(access: Access, keys: LinkKeys, cookie: str, now: datetime) -> Caller | None:
    """Who a session cookie signs in (None: no session, a forged, expired or signed-out one, a
    revoked key, or a role that may not open the dashboard)."""
    key, _, token = cookie.partition(":")
    try:
        key_id = UUID(key)
    except ValueError:
        return None
    if check_token(keys, "dashboard", key_id, "session", token, now) is not LinkCheck.VALID:
        return None
    issued = issued_at("dashboard", token)
    caller = access.session_caller(key_id, issued) if issued is not None else None
    return caller if caller is not None and caller.role in ROLES else None
