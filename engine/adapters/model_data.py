"""Model data as files: a CSV of rows with an outcome (or a prospect list) read into a
``Dataset``, refusing what cannot be used with file, line and column; scores written back
atomically."""

from __future__ import annotations

import csv
import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from engine.application.screening.datasets import Dataset, infer_kinds
from engine.domain.screening.scoring import refuse_prohibited
from engine.domain.shared.errors import HuokeError

ID_COLUMNS = ("id", "lead_id", "external_id", "application_id", "loan_id", "customer_id", "name", "phone", "email")
_TRUE, _FALSE = {"1", "true", "yes", "y", "bad"}, {"0", "false", "no", "n", "good"}


class DataError(HuokeError):
    """A CSV cannot be used as it is; every problem names its line and column."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        shown = problems[:12] + ([f"... and {len(problems) - 12} more"] if len(problems) > 12 else [])
        super().__init__("the file cannot be used; nothing was trained:\n  " + "\n  ".join(shown))


def read_csv(
    path: Path,
    target: str | None,
    time_column: str | None = None,
    id_columns: list[str] | None = None,
    exclude: list[str] | None = None,
    treatment: str | None = None,
) -> Dataset:
    """A CSV as a dataset: the target as 0/1, the time column parsed, ids and exclusions set aside
    (and, for an uplift model, the treatment column as 1 messaged / 0 held out). Refuses (naming
    file, line and column) a bad target, treatment or time value, or a prohibited column."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            header = list(reader.fieldnames or [])
            raw = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError([f"{path}: cannot read ({e})"]) from None
    problems: list[str] = []
    for needed, what in ((target, "--target"), (time_column, "--time-column"), (treatment, "--treatment")):
        if needed and needed not in header:
            problems.append(f"{path}:1: {what} column {needed!r} is not in the header ({', '.join(header)})")
    for col in [*(id_columns or []), *(exclude or [])]:
        if col not in header:
            problems.append(f"{path}:1: column {col!r} is not in the header")
    if problems:
        raise DataError(problems)
    ids = [c for c in header if c in (id_columns or []) or (id_columns is None and c.lower() in ID_COLUMNS)]
    features = [c for c in header if c not in {target, time_column, treatment, *ids, *(exclude or [])}]
    refuse_prohibited(features)
    y: list[int] = []
    treated: list[int] = []
    times: list[datetime] = []
    for line, row in enumerate(raw, 2):
        if target:
            value = (row.get(target) or "").strip().lower()
            if value not in _TRUE | _FALSE:
                problems.append(f"{path}:{line}: {target} is {row.get(target)!r}; use 1/0, yes/no or bad/good")
            y.append(int(value in _TRUE))
        if treatment:
            value = (row.get(treatment) or "").strip().lower()
            if value not in _TRUE | _FALSE:
                problems.append(
                    f"{path}:{line}: {treatment} is {row.get(treatment)!r}; use 1 (messaged) or 0 (held out)"
                )
            treated.append(int(value in _TRUE))
        if time_column:
            try:
                times.append(datetime.fromisoformat((row.get(time_column) or "").strip()))
            except ValueError:
                problems.append(f"{path}:{line}: {time_column} is {row.get(time_column)!r}, not a date like 2026-03-01")
    rows: list[dict[str, Any]] = [{c: (r.get(c) or "").strip() for c in features} for r in raw]
    kinds = infer_kinds(rows, features)
    for col in features:
        distinct = len({r[col] for r in rows if r[col]})
        if kinds[col] == "categorical" and len(rows) >= 50 and distinct > 0.5 * len(rows):
            problems.append(
                f"{path}: column {col!r} has {distinct} distinct values in {len(rows)} rows: it looks like an "
                "identifier or free text; name it with --id-column or leave it out with --exclude"
            )
    if problems:
        raise DataError(problems)
    if times and any(t.tzinfo is None for t in times) and any(t.tzinfo is not None for t in times):
        raise DataError([f"{path}: {time_column} mixes times with and without a time zone"])
    for r in rows:
        for col in features:
            if kinds[col] == "numeric" and r[col] != "":
                r[col] = float(r[col])
    return Dataset(
        features,
        kinds,
        rows,
        np.array(y, dtype=int),
        times or None,
        [{c: r.get(c) or "" for c in ids} for r in raw],
        str(path),
        np.array(treated, dtype=int) if treatment else None,
    )


#: A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """The value as a spreadsheet shows it but never runs: text that would start a formula gets a
    leading apostrophe (OWASP); numbers, negative ones too, stay numbers."""
    if not isinstance(value, str) or not value.startswith(FORMULA_START):
        return value
    try:
        float(value)
    except ValueError:
        return "'" + value
    return value


class OutputFileError(HuokeError):
    """Raised when an output file cannot be written where it was asked for (no such folder, an
    existing file without ``--force``, a symbolic link)."""


def check_output(out: Path, force: bool) -> Path:
    """The folder ``out`` goes in, or ``OutputFileError`` saying plainly why it cannot be written."""
    if out.is_symlink():
        raise OutputFileError(f"{out} is a symbolic link: name the file itself")
    if out.exists() and not force:
        raise OutputFileError(f"{out} exists: choose another file, or pass --force to replace it")
    if out.exists() and not out.is_file():
        raise OutputFileError(f"{out} is not a file")
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise OutputFileError(f"{folder} is not a folder: create it first, or choose another place for {out.name}")
    return folder


def write_rows(out: Path, header: list[str], rows: list[list[Any]], force: bool = False) -> None:
    """Write a CSV atomically (a private temporary file beside it, then a rename), formula cells
    neutralised; an existing file is replaced only with ``force``, a symbolic link never (the
    rename would leave the link's target alone, but what the operator meant is unclear)."""
    folder = check_output(out, force)
    try:
        fd, name = tempfile.mkstemp(dir=folder, prefix=f".{out.name}.", suffix=".tmp")  # O_EXCL, never a link
    except OSError as e:
        raise OutputFileError(f"cannot write in {folder}: {e.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            writer.writerow([safe_cell(h) for h in header])
            writer.writerows([safe_cell(v) for v in row] for row in rows)
        os.replace(name, out)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
