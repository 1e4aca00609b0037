"""Load marketers' YAML with line numbers, so every error can say where it is — and safely: a
file is at most ``MAX_BYTES``, nests at most ``MAX_DEPTH`` deep and expands (aliases counted each
time they are used) to at most ``MAX_NODES`` values, so an alias bomb or a runaway file is
refused in milliseconds; a key given twice in one mapping is an error, not last-wins."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from engine.domain.journeys.journey import LINE_KEY
from engine.domain.shared.errors import JourneyValidationError

MAX_BYTES = 1_048_576
MAX_DEPTH = 50
MAX_NODES = 100_000


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that records each mapping's 1-based line under LINE_KEY, with limits."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise yaml.composer.ComposerError(None, None, f"nested more than {MAX_DEPTH} levels deep", mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def get_single_node(self) -> Any:
        node = super().get_single_node()
        if node is not None and _expanded_size(node, {}) > MAX_NODES:
            raise yaml.composer.ComposerError(
                None, None, f"expands to more than {MAX_NODES:,} values (an alias bomb?)", node.start_mark
            )
        return node


def _expanded_size(node: yaml.Node, seen: dict[int, int]) -> int:
    """How many values ``node`` stands for with every alias expanded (shared nodes counted once
    per use; computed once per node, so the count itself stays cheap)."""
    if id(node) in seen:
        return seen[id(node)]
    seen[id(node)] = MAX_NODES + 1  # a cycle counts as too big
    if isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(k, seen) + _expanded_size(v, seen) for k, v in node.value)
    elif isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(v, seen) for v in node.value)
    else:
        size = 1
    seen[id(node)] = min(size, MAX_NODES + 1)
    return seen[id(node)]


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    keys: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, str | int | float | bool) and key in keys:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"key {str(key)[:40]!r} appears twice in one mapping (first on line {keys[key]})",
                key_node.start_mark,
            )
        if isinstance(key, str | int | float | bool):
            keys[key] = key_node.start_mark.line + 1
    mapping = loader.construct_mapping(node, deep=True)
    mapping[LINE_KEY] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)

# YAML 1.1 reads on/off/yes/no as booleans, so "on: lead_captured" would become True.
# Marketers write YAML 1.2-style: only true/false are booleans.
_LineLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_LineLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def load_yaml(path: Path) -> Any:
    """Parse one YAML file; a syntax error names the file, line and column."""
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise JourneyValidationError([f"{path}: {size:,} bytes; a definition file may have {MAX_BYTES:,}"])
        text = path.read_bytes().decode("utf-8")
    except OSError as e:
        raise JourneyValidationError([f"{path}: cannot read: {e.strerror}"]) from None
    except UnicodeDecodeError as e:
        line = path.read_bytes()[: e.start].count(b"\n") + 1
        raise JourneyValidationError(
            [f"{path}:{line}: not UTF-8 text (byte 0x{e.object[e.start]:02x}); save the file as UTF-8"]
        ) from None
    try:
        return yaml.load(text, Loader=_LineLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise JourneyValidationError([f"{where}: YAML: {e.problem}"]) from None


def strip_lines(data: Any) -> Any:
    """Drop the line markers (before storing a definition)."""
    if isinstance(data, dict):
        return {k: strip_lines(v) for k, v in data.items() if k != LINE_KEY}
    if isinstance(data, list):
        return [strip_lines(v) for v in data]
    return data
