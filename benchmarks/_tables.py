"""Printed tables and pass/fail bars shared by the benchmarks (each run as its own script)."""

from __future__ import annotations

import sys

FAILURES: list[str] = []  # every missed bar of this run, printed at the end; the exit code says if any


def table(title: str, header: tuple[str, ...], rows: list[tuple]) -> None:
    """A left-aligned first column and right-aligned numbers, flushed so a long run shows progress."""
    cells = [header] + [tuple(str(c) for c in row) for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(f"\n== {title}")
    for i, row in enumerate(cells):
        print("  ".join(c.rjust(w) if j else c.ljust(w) for j, (c, w) in enumerate(zip(row, widths))))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    sys.stdout.flush()


def bar(ok: bool, text: str) -> str:
    if not ok:
        FAILURES.append(text)
    return ("PASS " if ok else "FAIL ") + text
