"""huoke's tables and number formats: the same look for every command's output (80 columns,
long names wrap and are never cut, numbers right-aligned and short) and the same figures in the
CLI, its ``--json`` and the dashboard."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console, ConsoleOptions, RenderResult
from rich.segment import Segment
from rich.table import Table
from rich.text import Text


class Note(Text):
    """A remark to the person at the terminal rather than part of the output (a warning, a
    refused row): the CLI prints it on stderr, so piped output stays clean."""


def note(*parts: str | tuple[str, str]) -> Note:
    shown = Note()
    for part in parts:
        if isinstance(part, tuple):
            shown.append(*part)
        else:
            shown.append(part)
    return shown


class _ReportTable(Table):
    """A report's table, set apart from what was printed before it by a blank line; its heading
    on a line of its own (a table's own title wraps to the table's width)."""

    heading: str | None = None

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield Segment.line()
        if self.heading:
            yield Text(self.heading, style="table.title")
        yield from super().__rich_console__(console, options)


def plain_table(title: str | None = None, caption: str | None = None) -> Table:
    """huoke's table style: a rule under the headings, no box, no margins (more room for names
    at 80 columns), a blank line before."""
    table = _ReportTable(
        caption=caption,
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=(0, 1),
        collapse_padding=True,
        caption_justify="left",
    )
    table.heading = title
    return table


def report_table(
    title: str, columns: list[str], caption: str | None = None, wrap: int = 1, text_last: bool = False
) -> Table:
    """A table that fits 80 columns: the first ``wrap`` columns (and the last, ``text_last``) are
    text that wraps (never cut), the rest are right-aligned numbers."""
    table = plain_table(title, caption)
    for i, col in enumerate(columns):
        if i < wrap or (text_last and i == len(columns) - 1):
            table.add_column(col, overflow="fold")
        else:
            table.add_column(col, justify="right", no_wrap=True)
    return table


def import_summary(file: Any, rows: int, new: int, changed: str, unchanged: int, refused: int) -> Text:
    """An import's one-line outcome: ``file: 9 rows — 5 new, 1 updated, 2 unchanged, 1 refused``
    (``changed`` is the middle count with its word, new in green, refused in red)."""
    return Text.assemble(
        f"{file}: {rows} rows — ",
        (f"{new} new", "green"),
        f", {changed}, {unchanged} unchanged, ",
        (f"{refused} refused", "red"),
    )


def short(value: float | int | None) -> str:
    """A number in at most 6 characters: 950, 12.3k, 4.5M, 1.2B."""
    if value is None:
        return "—"
    v = float(value)
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= limit:
            return f"{v / limit:.1f}{suffix}"
    return f"{v:.0f}" if v == int(v) else f"{v:.2f}"


def pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def scope_caption(scope: dict[str, Any]) -> str:
    parts = []
    if scope.get("since") or scope.get("until"):
        parts.append(f"captured {scope.get('since') or 'from the start'} to {scope.get('until') or 'today'}")
    if scope.get("channel"):
        parts.append(f"channel {scope['channel']}")
    if scope.get("journey"):
        parts.append(f"journey {scope['journey']}")
    return "; ".join(parts) or "all leads"


def lift_span(pair: list[float] | None, joiner: str = " to ") -> str:
    """An interval of lifts in percentage points, ``+1.2 to +4.5`` (``—`` when there is none)."""
    return "—" if pair is None else f"{pair[0] * 100:+.1f}{joiner}{pair[1] * 100:+.1f}"
