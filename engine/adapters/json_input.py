"""JSON from outside (bus messages, JSONL lines): parsed with limits, so one hostile message is
refused on its own with a plain reason instead of failing the batch it came in (a 3,000-deep
array makes ``json.loads`` raise ``RecursionError``; a deep one below that still costs every
reader after it)."""

from __future__ import annotations

import json
from typing import Any

from engine.domain.shared.errors import HuokeError

#: Deepest nesting accepted: a lead or event row is an object of scalars, with a few small
#: objects inside (source, contact, consents) — 8 levels leave room for any real producer.
MAX_DEPTH = 8


class JsonInputError(HuokeError, ValueError):
    """Raised when outside JSON is not JSON, or is nested deeper than ``MAX_DEPTH``."""


def parse_json(data: str | bytes, max_depth: int = MAX_DEPTH) -> Any:
    """The value of one JSON document, or ``JsonInputError`` saying plainly what is wrong."""
    try:
        value = json.loads(data)
    except RecursionError:
        raise JsonInputError(f"nested more than {max_depth} levels deep") from None
    except UnicodeDecodeError:
        raise JsonInputError("not UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise JsonInputError(f"not valid JSON ({e.msg} at column {e.colno})") from None
    if depth(value, max_depth) > max_depth:
        raise JsonInputError(f"nested more than {max_depth} levels deep")
    return value


def depth(value: Any, limit: int) -> int:
    """How deep ``value`` nests (arrays and objects), counted without recursion; stops counting
    past ``limit``."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if deepest > limit:
                return deepest
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children if isinstance(child, dict | list))
    return deepest
