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
    lines = [*table(info), info["decision"]["reason"]]
    if not info["int8"]:
        lines.append(f"no int8 model written to {out}; the candidates are in {out / 'candidates'}")
    console = Console()
    for line in lines:
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    return info


def table(info: dict[str, Any]) -> list[str]:
    """One line per runtime: held-out score, int8 and float ms on that runtime, speed-up, bytes or why not.
    Plain lines, not a rich table: a narrow terminal or a pipe cut its cells to an ellipsis."""
    from netsculpt.tasks.metrics import metric_label

    label = metric_label(info["metric"])
    part = f", {info['part']} int8" if "part" in info else ""
    lines = [
        f"runtime auto{part}: held-out {label} (float {info['float_heldout_accuracy']:.2%}), "
        f"keep the fastest within {info['tolerance_pp']} pp",
        f"{'runtime':12s} {'score':>8s} {'int8 ms':>9s} {'float ms':>9s} {'on':12s} {'speed-up':>8s} "
        f"{'bytes':>12s}  note",
    ]
    chosen = info["decision"].get("int8_runtime") if info["int8"] else None
    for r in info["candidates"]:
        score = f"{r['heldout_accuracy']:.2%}" if "heldout_accuracy" in r else "-"
        ms = f"{r['latency_ms']:.3f}" if "latency_ms" in r else "-"
        float_ms = f"{r['float_ms']:.3f}" if "float_ms" in r else "-"
        speed = f"{r['speedup_vs_float']:.2f}x" if "speedup_vs_float" in r else "-"
        size = f"{r['size_bytes']:,}" if "size_bytes" in r else "-"
        note = "kept" if r["runtime"] == chosen else r.get("error", "")
        on = r.get("float_runtime", "-")
        lines.append(
            f"{r['runtime']:12s} {score:>8s} {ms:>9s} {float_ms:>9s} {on:12s} {speed:>8s} {size:>12s}  {note}"
        )
    return lines
