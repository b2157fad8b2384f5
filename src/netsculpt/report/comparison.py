"""The comparison page: several runs on shared trade-off plots, one colour and one front per run."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from netsculpt.report import format as fmt
from netsculpt.report.html import esc, note, page, pre, section, table
from netsculpt.report.pages import settings_table, tradeoff_section, value_of
from netsculpt.report.plots import Series, colour
from netsculpt.report.run import Run
from netsculpt.report.schema import SCHEMA_VERSION


def _stacked(value: str, change: tuple[str, str]) -> tuple[str, str]:
    """A final-model figure with its change against the run's own baseline underneath."""
    text, cls = change
    klass = f' class="{cls}"' if cls else ""
    return f"{esc(value)}<br><small{klass}>{esc(text)}</small>", "num"


def _row(i: int, run: Run, out_dir: Path) -> list:
    b, a = run.before, run.after

    def pair(key: str, show, smaller: str, larger: str) -> tuple[str, str]:
        return _stacked(
            show(value_of(a, key)), fmt.reduction(value_of(b, key), value_of(a, key), smaller, larger)
        )

    cal = run.results.calibration or value_of(a, "calibration")
    gflops = f"{cal.matmul_gflops:.0f}" if cal is not None and cal.matmul_gflops is not None else fmt.MISSING
    swatch = f'<span class="swatch" style="background:{colour(i)}"></span>'
    return [
        (swatch + _run_link(run, out_dir), "name"),
        (esc(run.title), "wrap"),
        _stacked(fmt.percent(value_of(a, "accuracy")),
                 fmt.accuracy_change(value_of(b, "accuracy"), value_of(a, "accuracy"))),
        pair("params", fmt.count, "smaller", "larger"),
        pair("macs", fmt.count, "fewer", "more"),
        pair("size_bytes", fmt.size, "smaller", "larger"),
        pair("latency_ms", fmt.millis, "faster", "slower"),
        esc(gflops),
        esc(len(run.points)),
    ]  # fmt: skip


def comparison_page(runs: Sequence[Run], out_dir: Path) -> str:
    """Runs side by side: their final models in a table, all their points on the trade-off plots."""
    header = [("run", "name"), ("model", "text"), "accuracy", "params", "MACs", "size", "latency",
              "CPU<br><small>GFLOP/s</small>", "models"]  # fmt: skip
    rows = [_row(i, run, out_dir) for i, run in enumerate(runs)]
    explain = note(
        esc(
            "Each run's final model, with its change against that run's own baseline underneath. Latencies "
            "were timed on each run's machine: the CPU calibration (single-thread matmul GFLOP/s) says how "
            "comparable they are."
        )
    )
    series = [Series(run.label, run.points, colour(i)) for i, run in enumerate(runs)]
    intro = (
        "Each run in its own colour, with its own Pareto front; squares are baselines, stars final models."
    )
    details = "".join(
        f"<details><summary>{esc(run.label)}</summary>"
        f"{pre(run.recipe) if run.recipe else settings_table(run)}</details>"
        for run in runs
    )
    sections = [
        section("Runs", table(header, rows), explain, anchor="runs"),
        tradeoff_section(series, intro),
        section("Recipes", details, anchor="recipes"),
    ]
    subtitle = esc(f"{len(runs)} runs \u00b7 results.json schema version {SCHEMA_VERSION}")
    return page(f"Comparison of {len(runs)} runs", subtitle, sections)


def _run_link(run: Run, out_dir: Path) -> str:
    """The run's label, linked to its own report when it has one (a relative file link, offline)."""
    target = run.path / "report.html"
    if not target.is_file():
        return esc(run.label)
    href = Path(os.path.relpath(target.resolve(), out_dir.resolve())).as_posix()
    return f'<a href="{esc(href)}">{esc(run.label)}</a>'
