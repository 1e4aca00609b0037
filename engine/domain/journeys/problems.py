"""What every part of journey validation shares: the list of problems (each with file, line and
where), the loader's line markers, and how allowed values are named."""

from __future__ import annotations

from typing import Any, get_args

from engine.domain.journeys.journey import LINE_KEY


def strip(data: Any) -> Any:
    """Remove loader line markers recursively."""
    if isinstance(data, dict):
        return {k: strip(v) for k, v in data.items() if k != LINE_KEY}
    if isinstance(data, list):
        return [strip(v) for v in data]
    return data


class Problems:
    """Collects problems, each prefixed by file and line."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.items: list[str] = []

    def add(self, where: str, problem: str, line: int = 0) -> None:
        at = f"{self.source}:{line}" if line else self.source
        self.items.append(f"{at}: {where}: {problem}")


def either(literal: Any) -> str:
    """The allowed values of a ``Literal`` type as a marketer reads them: 'a, b or c'."""
    values = list(get_args(literal))
    return ", ".join(values[:-1]) + f" or {values[-1]}" if len(values) > 1 else values[0]
