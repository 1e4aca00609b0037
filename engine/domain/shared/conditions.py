"""Declarative conditions over lead facts, shared by segment rules and journey branches."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from engine.domain.shared.fields import FIELDS

OPERATORS = ("eq", "ne", "in", "not_in", "gte", "gt", "lte", "lt", "between", "present")
NUMERIC_OPERATORS = {"gte", "gt", "lte", "lt", "between"}


def check_condition(cond: Any, where: str, forbidden: frozenset[str] = frozenset()) -> list[str]:
    """Return every problem with ``cond``; ``where`` prefixes each message."""
    if cond in ("always", {"always": True}):
        return []
    if not isinstance(cond, dict):
        return [f"{where}: a condition must be a mapping or 'always', got {cond!r}"]
    for combinator in ("all", "any"):
        if combinator in cond:
            parts = cond[combinator]
            if not isinstance(parts, list) or not parts:
                return [f"{where}: '{combinator}' needs a non-empty list of conditions"]
            problems: list[str] = []
            for n, part in enumerate(parts, 1):
                problems += check_condition(part, f"{where} {combinator}[{n}]", forbidden)
            return problems
    if "not" in cond:
        return check_condition(cond["not"], f"{where} not", forbidden)
    field = cond.get("field")
    if not isinstance(field, str):
        return [f"{where}: a condition needs 'field' (or all/any/not/always), got {cond!r}"]
    if field not in FIELDS:
        return [f"{where}: unknown field {field!r} (known: {', '.join(sorted(FIELDS))})"]
    if field in forbidden:
        return [f"{where}: field {field!r} is a prohibited basis here (fair lending, DOMAIN.md)"]
    ops = [k for k in cond if k != "field"]
    if len(ops) != 1 or ops[0] not in OPERATORS:
        return [f"{where}: field {field!r} needs exactly one of {', '.join(OPERATORS)}"]
    op, value = ops[0], cond[ops[0]]
    if op in NUMERIC_OPERATORS and FIELDS[field].type != "number":
        return [f"{where}: {op!r} compares numbers but {field!r} is {FIELDS[field].type}"]
    if op == "between" and not (isinstance(value, list) and len(value) == 2):
        return [f"{where}: 'between' needs [low, high]"]
    if op in ("in", "not_in") and not isinstance(value, list):
        return [f"{where}: {op!r} needs a list"]
    return []


def evaluate(cond: Any, facts: dict[str, Any]) -> bool:
    """Whether ``facts`` satisfy an already-checked condition; a missing fact never matches."""
    if cond in ("always", {"always": True}):
        return True
    if "all" in cond:
        return all(evaluate(c, facts) for c in cond["all"])
    if "any" in cond:
        return any(evaluate(c, facts) for c in cond["any"])
    if "not" in cond:
        return not evaluate(cond["not"], facts)
    field = cond["field"]
    op = next(k for k in cond if k != "field")
    return matches(facts.get(field), op, cond[op])


def matches(actual: Any, op: str, expected: Any) -> bool:
    """Apply one operator; a missing value only satisfies ``present: false``."""
    if op == "present":
        return (actual is not None) == bool(expected)
    if actual is None:
        return False
    if isinstance(actual, list):
        if op == "eq":
            return expected in actual
        if op == "in":
            return any(e in actual for e in expected)
        if op == "not_in":
            return not any(e in actual for e in expected)
    if op == "eq":
        return _same(actual, expected)
    if op == "ne":
        return not _same(actual, expected)
    if op == "in":
        return any(_same(actual, e) for e in expected)
    if op == "not_in":
        return not any(_same(actual, e) for e in expected)
    a = _decimal(actual)
    if a is None:
        return False
    if op == "between":
        lo, hi = _decimal(expected[0]), _decimal(expected[1])
        return lo is not None and hi is not None and lo <= a <= hi
    e = _decimal(expected)
    if e is None:
        return False
    return {"gte": a >= e, "gt": a > e, "lte": a <= e, "lt": a < e}[op]


def _decimal(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def _same(actual: Any, expected: Any) -> bool:
    if isinstance(actual, (int, Decimal)) and not isinstance(expected, str):
        return _decimal(actual) == _decimal(expected)
    return str(actual) == str(expected)


def fields_in(cond: Any) -> set[str]:
    """Every field a condition reads (for fair-lending and template checks)."""
    if not isinstance(cond, dict):
        return set()
    found: set[str] = set()
    for key in ("all", "any"):
        for part in cond.get(key, []):
            found |= fields_in(part)
    if "not" in cond:
        found |= fields_in(cond["not"])
    if isinstance(cond.get("field"), str):
        found.add(cond["field"])
    return found
