"""Request lines in the server's log and targets in the audit trail, with nothing personal or
secret in them: a lead named by phone or e-mail in a path (``/api/v1/leads/+8613912345671``)
appears as a keyed hash, link tokens (unsubscribe, confirmation, referral) and query strings not
at all. Lead ids, task ids and route names stay, so an operator can still follow a request."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from typing import Any
from uuid import UUID

#: Paths whose tail is a signed token or a personal reference (kept: the route).
_TOKEN_ROUTES = re.compile(r"^(/(?:unsubscribe|confirm|l|r))/.*$")
_LEAD_REF = re.compile(r"^(/api/v1/leads/)([^/]+)(.*)$")


def lead_ref_label(ref: str, key: bytes) -> str:
    """A lead reference as logs may show it: the lead id itself, else ``ref#`` and a keyed hash
    (the same person gives the same label; the label gives no phone or e-mail back)."""
    try:
        return str(UUID(ref))
    except ValueError:
        return "ref#" + hmac.new(key, ref.encode(), hashlib.sha256).hexdigest()[:12]


def redact_path(path: str, key: bytes) -> str:
    """``path`` (with or without its query) as the log and the audit trail keep it."""
    path = path.split("?", 1)[0]
    if (m := _TOKEN_ROUTES.match(path)) is not None:
        return f"{m.group(1)}/…"
    if (m := _LEAD_REF.match(path)) is not None:
        return f"{m.group(1)}{lead_ref_label(m.group(2), key)}{m.group(3)}"
    return path


class RedactingFilter(logging.Filter):
    """For uvicorn's access log: the request line's path redacted (``redact_path``)."""

    key = b""

    def filter(self, record: logging.LogRecord) -> bool:
        args: Any = record.args
        if isinstance(args, tuple) and len(args) == 5:  # client, method, path, version, status
            client, method, path, version, status = args
            record.args = (client, method, redact_path(str(path), self.key), version, status)
        return True


def log_config(key: bytes) -> dict[str, Any]:
    """uvicorn's logging configuration with the access log redacted."""
    from uvicorn.config import LOGGING_CONFIG

    RedactingFilter.key = key
    config: dict[str, Any] = {**LOGGING_CONFIG, "filters": {"redact": {"()": RedactingFilter}}}
    config["handlers"] = {name: dict(h) for name, h in LOGGING_CONFIG["handlers"].items()}
    config["handlers"]["access"]["filters"] = ["redact"]
    return config
