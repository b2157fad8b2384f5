"""``netsculpt quantize --runtime auto``: the recipe stage's ``runtime: auto`` from the command line.

The selection is :func:`netsculpt.pipeline.quantize_stage.select_auto` itself (calibrate on the first
``--calibration-batches`` training batches, score every runtime's candidate on the 8 after them, time
each against the float model, keep the fastest within ``--tolerance-pp``, or the float model when none
is faster or accurate enough); this module only builds its config from the flags and prints the table
it chose from.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from torch import nn


def check_auto_options(args: argparse.Namespace) -> None:
    """Refuse, before any data is built, flags ``--runtime auto`` cannot take: one runtime's options."""
    from netsculpt.errors import ConfigError

    if args.tolerance_pp < 0:
        raise ConfigError(f"--tolerance-pp is a drop in percentage points, >= 0; got {args.tolerance_pp}")
    if args.runtime == "auto" and (args.mixed or args.method != "minmax"):
        flag = "--mixed" if args.mixed else "--method"
        raise ConfigError(
            f"{flag} is ONNX Runtime's alone, and --runtime auto compares every runtime at their defaults: "
            f"drop {flag}, or pass --runtime onnxruntime"
        )


def select(
    args: argparse.Namespace, model: nn.Module, example: Any, loader: Any, task: Any, out: Path
) -> dict[str, Any]:
    """Run the stage's selection into ``out`` (a kept candidate's files land there) and print its table."""
    from netsculpt.pipeline.quantize_stage import select_auto
    from netsculpt.pipeline.recipe_stages import QuantizeStage
    from netsculpt.runtimes.artefacts import remove_artefacts

    cfg = QuantizeStage(
        runtime="auto", calib_batches=args.calibration_batches, tolerance_pp=args.tolerance_pp, part=args.part
    )
    out.mkdir(parents=True, exist_ok=True)
    remove_artefacts(out)  # another runtime's artefact left in --out would be loaded instead
    info = select_auto(model, example, loader, out, task, cfg, runs=30)
    Console().print(table(info))
    Console().print(info["decision"]["reason"], markup=False)
    return info


def table(info: dict[str, Any]) -> Table:
    """One row per runtime: held-out score, int8 and float ms on that runtime, speed-up, size or why not."""
    from netsculpt.tasks.metrics import metric_label

    label = metric_label(info["metric"])
    part = f", {info['part']} int8" if "part" in info else ""
    title = (
        f"runtime auto{part}: held-out {label} (float {info['float_heldout_accuracy']:.2%}), "
        f"keep the fastest within {info['tolerance_pp']} pp"
    )
    t = Table(title=title)
    for column in ("runtime", "score", "int8 ms", "float ms", "on", "speed-up", "bytes", "note"):
        t.add_column(column, justify="left" if column in ("runtime", "on", "note") else "right", no_wrap=True)
    chosen = info["decision"].get("int8_runtime") if info["int8"] else None
    for r in info["candidates"]:
        score = f"{r['heldout_accuracy']:.2%}" if "heldout_accuracy" in r else "-"
        ms = f"{r['latency_ms']:.3f}" if "latency_ms" in r else "-"
        float_ms = f"{r['float_ms']:.3f}" if "float_ms" in r else "-"
        speed = f"{r['speedup_vs_float']:.2f}x" if "speedup_vs_float" in r else "-"
        size = f"{r['size_bytes']:,}" if "size_bytes" in r else "-"
        note = "kept" if r["runtime"] == chosen else r.get("error", "")
        t.add_row(r["runtime"], score, ms, float_ms, r.get("float_runtime", "-"), speed, size, note)
    return t
