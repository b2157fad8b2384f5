"""The per-runtime page of a run: every evaluated model timed on every runtime (``netsculpt bench``).

``RUN_DIR/bench.json`` holds the rows ``netsculpt bench RUN_DIR`` measured; this page shows them as a
table (latency, throughput, peak memory, or why a runtime could not run a model) and, per runtime, a
Pareto plot of accuracy against latency with one series per thread count and batch size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from netsculpt.jsoncheck import read_json_file
from netsculpt.report import format as fmt
from netsculpt.report.html import esc, figure, note, page, section, table
from netsculpt.report.plots import Series, colour, tradeoff_chart
from netsculpt.report.run import Point, Run

BENCH_NAME = "bench.json"
PAGE_NAME = "runtimes.html"
LABELS = {
    "torch": "PyTorch eager",
    "compile": "torch.compile (inductor)",
    "onnxruntime": "ONNX Runtime",
    "openvino": "OpenVINO",
}


def read_bench(folder: Path) -> dict[str, Any] | None:
    path = folder / BENCH_NAME
    if not path.is_file():
        return None
    from netsculpt.errors import ConfigError

    data = read_json_file(path, error=ConfigError)
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        raise ConfigError(f"{path} is not a netsculpt bench file (no 'rows'); rerun `netsculpt bench`")
    return data


def _configs(rows: list[dict[str, Any]]) -> list[tuple[int, int]]:
    return sorted({(int(r["threads"]), int(r["batch"])) for r in rows})


def pareto_figures(rows: list[dict[str, Any]]) -> list[str]:
    """One accuracy-vs-latency figure per runtime (a series per threads x batch), as HTML."""
    figures = []
    runtimes = list(dict.fromkeys(r["runtime"] for r in rows))
    for runtime in runtimes:
        mine = [r for r in rows if r["runtime"] == runtime]
        series = []
        for i, (threads, batch) in enumerate(_configs(mine)):
            points = [
                Point(name=r["model"], accuracy=r.get("accuracy"), latency_ms=r.get("latency_ms"))
                for r in mine
                if (r["threads"], r["batch"]) == (threads, batch) and r.get("latency_ms")
            ]
            if points:
                series.append(
                    Series(f"{threads} thread{'s' if threads > 1 else ''}, batch {batch}", points, colour(i))
                )
        label = LABELS.get(runtime, runtime)
        uri = (
            tradeoff_chart(series, "latency_ms", f"{label}: latency per batch (ms)", "ms") if series else None
        )
        failed = sorted({r["error"] for r in mine if r.get("error")})
        why = f"{label}: no model was timed ({'; '.join(failed)[:300]})" if failed else f"{label}: no timings"
        caption = esc(f"{label}: every evaluated model; each line joins one configuration's Pareto front.")
        figures.append(figure(uri, f"accuracy vs latency on {label}", caption, missing=why))
    return figures


def rows_table(rows: list[dict[str, Any]]) -> str:
    body = []
    for r in rows:
        ok = r.get("latency_ms") is not None
        body.append(
            [
                (esc(r["model"]), "name"),
                (esc(LABELS.get(r["runtime"], r["runtime"])), "text"),
                esc(r["threads"]),
                esc(r["batch"]),
                esc(fmt.percent(r.get("accuracy"))),
                esc(fmt.millis(r.get("latency_ms"))),
                esc(
                    f"{r['round_spread_pct']:.0f} %" if r.get("round_spread_pct") is not None else fmt.MISSING
                ),
                esc(f"{r['throughput']:.1f}/s" if ok and r.get("throughput") else fmt.MISSING),
                esc(fmt.size(r.get("peak_memory_bytes"))),
                (esc(r.get("error") or ""), "settings"),
            ]
        )
    header = [
        ("model", "name"),
        ("runtime", "text"),
        "threads",
        "batch",
        "accuracy",
        "latency",
        "spread",
        "throughput",
        "peak memory",
        ("why not measured", "text"),
    ]
    return table(header, body, drop_empty=True)


def runtimes_page(run: Run, bench: dict[str, Any], report_name: str = "report.html") -> str:
    rows = bench["rows"]
    cal = bench.get("calibration") or {}
    machine = (
        f"CPU calibration {cal.get('matmul_gflops', 0):.1f} GFLOP/s matmul, "
        f"{cal.get('python_loop_ms', 0):.1f} ms "
        "Python loop; latency is the median of alternating rounds, spread the range of the rounds' medians "
        "(two rows closer than it are within noise); peak memory is the resident memory the "
        "process gained while the runtime prepared and warmed up (a lower bound)."
    )
    intro = "Accuracy is each model's test accuracy from the run; latency is per batch on each runtime."
    sections = [
        section(
            "Accuracy against latency, per runtime",
            note(esc(intro)),
            '<div class="grid">' + "".join(pareto_figures(rows)) + "</div>",
            anchor="pareto",
        ),
        section("Every model on every runtime", rows_table(rows), note(esc(machine)), anchor="bench"),
        note(f'<a href="{esc(report_name)}">back to the run report</a>'),
    ]
    subtitle = esc(f"run {run.path.resolve().name} \u00b7 {len(rows)} timings from netsculpt bench")
    return page(f"{run.title}: runtimes", subtitle, sections)


def runtimes_link(run: Run, page_name: str = PAGE_NAME) -> str:
    """A line for the run report pointing at the runtimes page, when ``netsculpt bench`` made one."""
    if not (run.path / BENCH_NAME).is_file():
        return ""
    return section(
        "Runtimes",
        note(f'<a href="{esc(page_name)}">every evaluated model on every runtime</a> (netsculpt bench)'),
        anchor="runtimes",
    )
