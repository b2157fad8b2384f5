"""`netsculpt analyze MODEL`: per-layer table and totals (params, MACs, memory, size, latency)."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from netsculpt.cli.common import add_model_args, example, load_model, print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("analyze", help="per-layer parameters, MACs and totals of a model")
    add_model_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--groups", action="store_true", help="also list the coupled channel groups")
    p.add_argument("--runs", type=int, default=20, help="timed runs for latency")
    p.add_argument("--onnx", action="store_true", help="also time ONNX Runtime")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from netsculpt.measure import measure

    model, shape = load_model(args)
    x = example(shape)
    metrics = measure(model, x, runs=args.runs, warmup=3, onnx=args.onnx)
    on_disk = _file_bytes(args.model)
    if args.json:
        data = metrics.to_dict() | ({"file_bytes": on_disk} if on_disk is not None else {})
        print_json({k: data[k] for k in ("params", "macs", "latency_ms", "size_bytes", "layers")} | data)
        return 0
    console = Console()
    table = Table(title=f"{args.model}  input {tuple(shape)}")
    for col in ("layer", "type", "params", "MACs", "output"):
        table.add_column(col, justify="right" if col in ("params", "MACs") else "left")
    for layer in metrics.layers:
        table.add_row(
            layer.name, layer.type, f"{layer.params:,}", f"{layer.macs:,}", str(layer.output_shape or "")
        )
    console.print(table)
    lat = f"{metrics.latency_ms:.2f} ms" if metrics.latency_ms is not None else "-"
    at = f"batch {metrics.batch_size}" if metrics.batch_size else "example as given"
    console.print(
        f"[bold]total[/]: {metrics.params:,} params · {metrics.macs / 1e6:,.2f} M MACs ({at}) · peak "
        f"activations {metrics.peak_activation_bytes / 2**20:.2f} MiB ({at}) · size "
        f"{metrics.size_bytes / 2**20:.2f} MiB{_disk_note(on_disk, metrics.size_bytes)} · latency {lat} "
        "(batch 1)"
    )
    if args.groups:
        from netsculpt.graph import trace

        console.print(str(trace(model, x)), markup=False)
    return 0


def _file_bytes(model: str) -> int | None:
    """The weights file of a saved model folder: packed palettes and sparse coding make it smaller than
    the state dict the loaded model holds (a 4-bit clustered model is decoded to float32 on load)."""
    from pathlib import Path

    from netsculpt.io import WEIGHTS_FILE, is_saved_model

    path = Path(model) / WEIGHTS_FILE
    return path.stat().st_size if is_saved_model(model) and path.is_file() else None


def _disk_note(on_disk: int | None, size: int) -> str:
    if on_disk is None or abs(on_disk - size) <= 0.02 * size:  # a float folder: the same bytes
        return ""
    return f" as loaded, {on_disk / 2**20:.2f} MiB on disk"
