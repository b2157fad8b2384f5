"""PNG files ``netsculpt bench`` writes beside bench.json: accuracy-vs-latency Pareto plots per runtime
(a run's models), or latency bars per batch size (models named on the command line, no accuracy)."""

from __future__ import annotations

import io
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from netsculpt.report.plots import PALETTE, Series, colour, tradeoff_figure
from netsculpt.report.run import Point
from netsculpt.report.runtimes import LABELS


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buffer, metadata={"Software": None})
    return buffer.getvalue()


def pareto_pngs(rows: list[dict[str, Any]]) -> dict[str, bytes]:
    """``pareto_<runtime>.png``: accuracy against latency, one series per threads x batch."""
    out = {}
    for runtime in dict.fromkeys(r["runtime"] for r in rows):
        mine = [
            r
            for r in rows
            if r["runtime"] == runtime and r.get("latency_ms") and r.get("accuracy") is not None
        ]
        configs = sorted({(r["threads"], r["batch"]) for r in mine})
        series = [
            Series(
                f"{t} thread(s), batch {b}",
                [
                    Point(r["model"], accuracy=r["accuracy"], latency_ms=r["latency_ms"])
                    for r in mine
                    if (r["threads"], r["batch"]) == (t, b)
                ],
                colour(i),
            )
            for i, (t, b) in enumerate(configs)
        ]
        fig = tradeoff_figure(
            series, "latency_ms", f"{LABELS.get(runtime, runtime)}: latency per batch (ms)", "ms"
        )
        if fig is not None:
            out[f"pareto_{runtime}.png"] = _png(fig)
    return out


def latency_figures(rows: list[dict[str, Any]]) -> dict[str, bytes]:
    """``latency_b<batch>.png``: grouped bars, models x runtimes, at each thread count's first value."""
    out = {}
    timed = [r for r in rows if r.get("latency_ms")]
    for batch in sorted({r["batch"] for r in timed}):
        mine = [r for r in timed if r["batch"] == batch]
        threads = min(r["threads"] for r in mine)
        mine = [r for r in mine if r["threads"] == threads]
        models = list(dict.fromkeys(r["model"] for r in mine))
        runtimes = list(dict.fromkeys(r["runtime"] for r in mine))
        fig = Figure(figsize=(max(4.0, 1.2 * len(models) * len(runtimes) / 2 + 2), 3.2), dpi=150)
        ax = fig.add_subplot()
        width = 0.8 / max(1, len(runtimes))
        for j, runtime in enumerate(runtimes):
            values = [
                next((r["latency_ms"] for r in mine if r["model"] == m and r["runtime"] == runtime), 0)
                for m in models
            ]
            ax.bar(
                [i + j * width for i in range(len(models))],
                values,
                width,
                label=LABELS.get(runtime, runtime),
                color=PALETTE[j % len(PALETTE)],
            )
        ax.set_xticks([i + width * (len(runtimes) - 1) / 2 for i in range(len(models))], models, fontsize=8)
        ax.set_ylabel("latency per batch (ms)")
        ax.set_title(f"batch {batch}, {threads} thread(s)", fontsize=9)
        ax.legend(fontsize=7)
        fig.tight_layout()
        out[f"latency_b{batch}.png"] = _png(fig)
    return out
