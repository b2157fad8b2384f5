"""The table a person reads at the end of a run: before, after, ratio."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table


def print_summary(results: dict[str, Any], console: Console | None = None) -> None:
    """Accuracy, params, MACs, size on disk and latency before and after, with ratios and wall time."""
    console = console or Console()
    b, a = results["before"], results["after"]
    table = Table(title=f"{results['job']['model']} on {results['job']['data']}")
    for col in ("", "before", "after", "ratio"):
        table.add_column(col, justify="right")
    task = results.get("task") or {}
    label = task.get("label") or "accuracy"
    acc_delta = (a["accuracy"] - b["accuracy"]) * 100
    table.add_row(label, f"{b['accuracy']:.2%}", f"{a['accuracy']:.2%}", f"{acc_delta:+.2f} pp")
    for key, other in (task.get("labels") or {}).items():  # mAP@.5 beside mAP@[.5:.95], ...
        x, y = (b.get("task_metrics") or {}).get(key), (a.get("task_metrics") or {}).get(key)
        if key != task.get("metric") and x is not None and y is not None:
            table.add_row(other, f"{x:.2%}", f"{y:.2%}", f"{(y - x) * 100:+.2f} pp")
    table.add_row(
        "params", f"{b['params']:,}", f"{a['params']:,}", f"{b['params'] / a['params']:.2f}x smaller"
    )
    table.add_row("MACs", f"{b['macs']:,}", f"{a['macs']:,}", f"{b['macs'] / a['macs']:.2f}x fewer")
    table.add_row(
        "size on disk",
        f"{b['size_bytes']:,} B",
        f"{a['size_bytes']:,} B",
        f"{b['size_bytes'] / a['size_bytes']:.2f}x",
    )
    side = results.get("latency_side_by_side") or {}
    if side.get("input_ms") and side.get("output_ms"):  # timed alternately: a ratio the machine cannot skew
        table.add_row(
            f"latency (batch {side['batch']}, {side['runtime']})",
            f"{side['input_ms']:.3f} ms",
            f"{side['output_ms']:.3f} ms",
            f"{side['speedup']:.2f}x faster",  # check_stage's own input_ms / output_ms
        )
    elif b.get("latency_ms") and a.get("latency_ms"):  # guards off: each stage's own timing
        ratio = b["latency_ms"] / a["latency_ms"]
        table.add_row(
            "latency (batch 1)",
            f"{b['latency_ms']:.3f} ms",
            f"{a['latency_ms']:.3f} ms",
            f"{ratio:.2f}x faster",
        )
    for key, by_batch in (a.get("latency") or {}).items():  # an int8 artefact: timed on its runtime only
        if key.endswith("-int8") and by_batch.get("1"):
            runtime = key.removesuffix("-int8")
            before = ((b.get("latency") or {}).get(runtime) or {}).get("1")
            table.add_row(
                f"latency on {runtime} (batch 1; after: int8)",
                f"{before:.3f} ms" if before else "not timed",
                f"{by_batch['1']:.3f} ms",
                f"{before / by_batch['1']:.2f}x faster" if before else "no float time on this runtime",
            )
    console.print(table)
    for line in stage_lines(results):
        console.print(line)
    cal = results["calibration"]
    console.print(
        f"wall time {results['wall_seconds']:.1f} s with {results.get('threads', 1)} thread(s) · "
        "CPU calibration: "
        f"{cal['matmul_gflops']:.1f} GFLOP/s matmul, {cal['python_loop_ms']:.1f} ms Python loop "
        "(compare timings across machines with these)"
    )


def stage_lines(results: dict[str, Any]) -> list[str]:
    """What each stage left (accuracy right after pruning, after fine-tuning, ...) and, when the recipe
    asked for it, what the same stages reach with a random criterion: did the criterion matter?"""
    stages = results.get("stages")
    if not isinstance(stages, list) or not stages:
        return []
    ours = " -> ".join(f"{s['kind']} {s['metrics']['accuracy']:.2%}" for s in stages)
    label = (results.get("task") or {}).get("label") or "accuracy"
    lines = [f"{label} by stage: {ours}"]
    for s in stages:
        stop = (s.get("info") or {}).get("early_stopping")
        if stop:
            ended = "stopped early" if stop.get("stopped_early") else "ran to the end"
            lines.append(
                f"{s['kind']}: kept epoch {stop.get('best_epoch')} of {stop.get('epochs_run')}, the best on "
                f"{stop.get('holdout')} held-out training samples ({ended}; the test split is only reported)"
            )
    lines += quantize_lines(stages)
    lines += guard_lines(stages)
    compare = results.get("compare_random")
    if compare and compare.get("stages"):
        theirs = " -> ".join(f"{s['kind']} {s['accuracy']:.2%}" for s in compare["stages"])
        gap = 100 * (results["after"]["accuracy"] - compare["accuracy"])
        lines.append(f"same recipe, random criterion: {theirs} ({gap:+.2f} pp for the criterion)")
    return lines


def quantize_lines(stages: list[dict[str, Any]]) -> list[str]:
    """What a ``runtime: auto`` quantize stage kept and why: int8 only when it beat the float model, and
    when it did not, said in capitals (the stage keeps the float model, or int8 as ``if_slower`` asks), as
    when no candidate was within ``tolerance_pp``."""
    lines = []
    for s in stages:
        decision = (s.get("info") or {}).get("decision") if isinstance(s, dict) else None
        if isinstance(decision, dict) and decision.get("reason"):
            flag = "[bold red]int8 NOT FASTER than float:[/] " if decision.get("int8_faster") is False else ""
            if decision.get("int8_accurate") is False:
                flag = "[bold red]int8 NOT ACCURATE ENOUGH:[/] "
            lines.append(f"{s['kind']} (runtime auto): {flag}{escape(decision['reason'])}")
    return lines


def guard_lines(stages: list[dict[str, Any]]) -> list[str]:
    """Each guarded stage's latency against its input on the deploy runtime; a slower one is flagged."""
    from netsculpt.pipeline.guards import describe

    lines = []
    for s in stages:
        guard = s.get("guard") if isinstance(s, dict) else None
        if isinstance(guard, dict):
            flag = "[bold red]SLOWER than its input[/] " if guard.get("slower") else ""
            lines.append(f"latency guard {flag}{describe(s['kind'], guard)}")
    return lines
