"""Rows of lead, lifecycle and cost files: CSV (a header row) or JSONL (one object a line),
numbered by line; a row that cannot be read at all comes as the reason, and the rest go on."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine.adapters.json_input import JsonInputError, parse_json

#: Longest JSONL record read (a lead is a few hundred characters).
MAX_LINE = 1_048_576


def read_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line, row) for each record; a row that cannot be parsed at all comes as a message."""
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        with path.open(encoding="utf-8-sig") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                if len(line) > MAX_LINE:
                    yield n, f"line of {len(line):,} characters; a record may have {MAX_LINE:,}"
                    continue
                try:
                    value = parse_json(line)
                except JsonInputError as e:
                    yield n, str(e)
                    continue
                yield n, value if isinstance(value, dict) else "each line must be a JSON object"
    elif path.suffix.lower() == ".csv":
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            headers = [h.strip() for h in reader.fieldnames or []]
            twice = sorted({h for h in headers if headers.count(h) > 1})
            if twice:
                raise ValueError(f"{path}:1: column {', '.join(twice)} appears more than once in the header")
            reader.fieldnames = headers
            while True:
                before = reader.line_num
                try:
                    row = next(reader)
                except StopIteration:
                    break
                except csv.Error as e:  # e.g. a field over the limit: this row only, the rest goes on
                    yield before + 1, f"unreadable row ({e}; fields may hold {csv.field_size_limit() // 1024} KiB)"
                    continue
                if None in row:
                    yield reader.line_num, "more values than header columns"
                    continue
                yield reader.line_num, {k: v for k, v in row.items() if k is not None}
    else:
        raise ValueError(f"{path}: unsupported file type {path.suffix!r} (use .csv or .jsonl)")


def count_rows(path: Path) -> int:
    with path.open(encoding="utf-8-sig") as f:
        n = sum(1 for line in f if line.strip())
    return max(n - 1, 0) if path.suffix.lower() == ".csv" else n
