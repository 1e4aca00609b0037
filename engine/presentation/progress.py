"""Progress bars for long work (an import, a rebuild of views as they stood): counted rows, or
positions in a log, on the console the caller gives (stderr, so piped output stays clean)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

T = TypeVar("T")


def counted(console: Console, total: int, label: str, run: Callable[[Callable[[int], None]], T]) -> T:
    """Run ``run(advance)`` under a progress bar on stderr counting up to ``total``."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task(label, total=total)
        return run(lambda n: progress.advance(task, n))


@contextmanager
def positions(console: Console, label: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr for work measured in log positions (``progress(done, total)``),
    shown only once there is work (nothing to replay: nothing printed)."""
    bar = Progress(
        TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(), console=console
    )
    task: list[Any] = []

    def progress(done: int, total: int) -> None:
        if not task and total:
            bar.start()
            task.append(bar.add_task(label, total=total))
        if task:
            bar.update(task[0], completed=done, total=total)

    try:
        yield progress
    finally:
        if task:
            bar.stop()
