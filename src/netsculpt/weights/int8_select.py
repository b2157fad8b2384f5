"""int8 on each runtime side by side, and ``runtime: auto``: keep the fastest within an accuracy tolerance.

Every candidate is calibrated on the same batches, scored on the training batches that follow them (held
out of calibration, never the test split) and timed at the example's batch on its own runtime (ONNX
Runtime, OpenVINO, or the PT2E program under ``torch.compile``), one after another in alternating
rounds. The fastest candidate whose held-out accuracy is within ``tolerance_pp`` percentage points of the
float model's is kept; its files are moved into the stage folder, the others' stay in ``candidates/``.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from netsculpt.errors import ConfigError, DataError
from netsculpt.modes import module_modes, restore_modes
from netsculpt.runtimes.artefacts import timing_runtime
from netsculpt.runtimes.base import RuntimeUnsupported, first_line, get_runtime

INT8_RUNTIMES = ("onnxruntime", "openvino", "torch")


def quantize_on(
    runtime: str,
    model: nn.Module,
    example: torch.Tensor,
    calibration: list[torch.Tensor],
    out: Path,
    config: Any = None,
) -> nn.Module:
    """int8 ``model`` for one runtime, artefact written in ``out``."""
    if runtime == "onnxruntime":
        from netsculpt.weights.quantize import Int8Config, quantize_int8

        return quantize_int8(
            model, example, calibration, out, config or Int8Config(calibration_batches=len(calibration))
        )
    from netsculpt.weights.int8_runtimes import quantize_openvino, quantize_pt2e

    if runtime == "openvino":
        return quantize_openvino(model, example, calibration, out)
    if runtime == "torch":
        return quantize_pt2e(model, example, calibration, out)
    raise ConfigError(
        f"int8 runtime {runtime!r} is unknown; choose one of {', '.join(INT8_RUNTIMES)} or auto"
    )


def _accuracy(model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    from netsculpt.train import evaluate

    return evaluate(model, batches)[0]


def _latency(
    models: dict[str, nn.Module], example: torch.Tensor, threads: int, runs: int, rounds: int = 3
) -> dict[str, float]:
    """Median ms per candidate on its runtime, in alternating rounds, by the clock ``bench`` and the
    latency guards use (:func:`netsculpt.runtimes.bench.clock`), so the figures compare with theirs."""
    import statistics

    from netsculpt.runtimes.bench import clock

    modes = [module_modes(m) for m in models.values()]  # each prepare enters eval mode; put them all back
    prepared = {}
    now = clock(threads)
    try:
        for name, m in models.items():
            runtime = timing_runtime(m) if getattr(m, "deployed_runtime", None) else "torch"
            prepared[name] = get_runtime(runtime).prepare(m, (example,), threads)
        times: dict[str, list[float]] = {name: [] for name in prepared}
        for p in prepared.values():
            for _ in range(3):
                p.call()
        for _ in range(rounds):
            for name, p in prepared.items():
                for _ in range(max(1, runs // rounds)):
                    start = now()
                    p.call()
                    times[name].append((now() - start) / 1e6)
    finally:
        for p in reversed(prepared.values()):  # last prepared, first closed
            p.close()
        for saved in modes:
            restore_modes(saved)
    return {name: statistics.median(t) for name, t in times.items()}


def compare_int8(
    model: nn.Module,
    example: torch.Tensor,
    data: Iterable[Any],
    out_dir: str | os.PathLike[str],
    *,
    runtimes: tuple[str, ...] = INT8_RUNTIMES,
    calib_batches: int = 8,
    select_batches: int = 8,
    threads: int = 1,
    runs: int = 30,
) -> tuple[dict[str, nn.Module], list[dict[str, Any]], float]:
    """int8 on each runtime into ``out_dir/candidates/<runtime>``: (models, one row each, float accuracy).

    A runtime that cannot quantize or run the model gets a row with ``error`` instead of numbers.
    """
    batches = list(itertools.islice(data, calib_batches + select_batches))
    if len(batches) <= calib_batches:
        raise DataError(
            f"int8 selection needs more than calib_batches={calib_batches} training batches (the ones after "
            f"them are held out to score candidates); the loader gave {len(batches)}"
        )
    from netsculpt.weights.int8_runtimes import calibration_batches

    calibration = calibration_batches(batches[:calib_batches], calib_batches)
    held = [(b[0], b[1]) for b in batches[calib_batches:]]
    float_acc = _accuracy(model, held)
    models: dict[str, nn.Module] = {}
    rows: list[dict[str, Any]] = []
    for runtime in runtimes:
        row: dict[str, Any] = {"runtime": runtime}
        try:
            q = quantize_on(runtime, model, example, calibration, Path(out_dir) / "candidates" / runtime)
            row["heldout_accuracy"] = _accuracy(q, held)
            row["size_bytes"] = q.size_bytes
            models[runtime] = q
        except (ConfigError, RuntimeUnsupported) as exc:
            row["error"] = str(exc)
        except Exception as exc:  # an exporter's or quantizer's own failure is a row, not a crash
            row["error"] = f"int8 on {runtime} failed: {first_line(exc)}"
        rows.append(row)
    if models:
        latency = _latency({"float": model, **models}, example, threads, runs)
        for row in rows:
            if row["runtime"] in latency:
                row["latency_ms"] = latency[row["runtime"]]
                row["speedup_vs_float_eager"] = latency["float"] / latency[row["runtime"]]
        for row in rows:
            row["float_eager_ms"] = latency["float"]
    return models, rows, float_acc


def pick_fastest(rows: list[dict[str, Any]], float_acc: float, tolerance_pp: float) -> dict[str, Any]:
    """The fastest row within ``tolerance_pp`` of the float accuracy, or an error naming the misses."""
    ok = [r for r in rows if "latency_ms" in r and 100 * (float_acc - r["heldout_accuracy"]) <= tolerance_pp]
    if not ok:
        detail = "; ".join(
            f"{r['runtime']}: {r['error']}"
            if "error" in r
            else f"{r['runtime']}: {r['heldout_accuracy']:.2%}"
            for r in rows
        )
        raise ConfigError(
            f"no int8 runtime kept accuracy within tolerance_pp={tolerance_pp} of the float model's "
            f"{float_acc:.2%} on held-out training batches ({detail}); raise tolerance_pp or calib_batches"
        )
    return min(ok, key=lambda r: r["latency_ms"])


def promote(candidate_dir: Path, out: Path) -> None:
    """Move the chosen artefact's files into the stage folder (the runner loads them from there)."""
    for item in sorted(candidate_dir.iterdir(), key=lambda p: p.suffix == ".xml"):  # an IR's .bin before .xml
        if item.is_file():
            os.replace(item, out / item.name)
    shutil.rmtree(candidate_dir, ignore_errors=True)
