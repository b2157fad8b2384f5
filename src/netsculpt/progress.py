"""Progress bars and console output shared by every long-running part of netsculpt.

One place decides whether to draw bars (a person at a terminal) or stay quiet (``--quiet``, CI, tests),
so training loops, searches and benchmarks never each reinvent it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

T = TypeVar("T")

_state = {"quiet": os.environ.get("NETSCULPT_QUIET", "") not in ("", "0")}
console = Console(stderr=True, highlight=False)


def set_quiet(quiet: bool) -> None:
    """Silence (or restore) progress bars and informational messages process-wide."""
    _state["quiet"] = quiet


def is_quiet_requested() -> bool:
    """Whether quiet was asked for (``set_quiet`` / ``NETSCULPT_QUIET``), terminal or not."""
    return _state["quiet"]


def is_quiet() -> bool:
    return _state["quiet"] or not sys.stderr.isatty()


def info(message: str) -> None:
    """Print an informational line to stderr unless quiet was requested explicitly."""
    if not _state["quiet"]:
        console.print(message)


@contextmanager
def progress_bar(transient: bool = True) -> Iterator[Progress]:
    """A rich ``Progress`` that renders nothing when output is quiet or not a terminal."""
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
        console=console,
        transient=transient,
        disable=is_quiet(),
    )
    with progress:
        yield progress


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate ``items`` with a progress bar (no bar when quiet)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with progress_bar() as progress:
        task = progress.add_task(description, total=total, status="")
        for item in items:
            yield item
            progress.advance(task)
