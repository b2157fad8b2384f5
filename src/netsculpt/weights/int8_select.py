"""int8 on each runtime side by side, and ``runtime: auto``: keep the fastest within a score tolerance.

Every candidate is calibrated on the same batches, scored on the training batches that follow them (held
out of calibration, never the test split) and timed at the example's batch on its own runtime (ONNX
Runtime, OpenVINO, or the PT2E program under ``torch.compile``), one after another in alternating
rounds, at all of the model's example inputs. Scores are the task's headline metric (accuracy, mIoU,
...) as a fraction; the fastest candidate within ``tolerance_pp`` percentage points of the float model's
is kept, its files are moved into the stage folder, the others' stay in ``candidates/``.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from netsculpt.errors import ConfigError, DataError, a_type
from netsculpt.measure._inputs import as_tuple
from netsculpt.runtimes.artefacts import timing_runtime
from netsculpt.runtimes.base import Prepared, RuntimeUnsupported, first_line, get_runtime

if TYPE_CHECKING:
    from netsculpt.tasks import Task

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


class _Spread(nn.Module):
    """Calls a several-input model with a batch's tuple of inputs as its arguments: a task's evaluator
    calls ``model(inputs)``, and a model taking ``(x0, x1)`` wants ``model(x0, x1)``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs: tuple[torch.Tensor, ...]) -> Any:
        return self.model(*inputs)


def _score(task: Task, model: nn.Module, held: list[Any], several: bool) -> float:
    """The task's headline metric (accuracy, mIoU, ...) as a fraction on the held-out batches."""
    return float(task.evaluate(_Spread(model) if several else model, held)[task.metric])


def _latency(
    models: dict[str, nn.Module], example_inputs: Any, threads: int, runs: int, rounds: int = 3
) -> dict[str, float]:
    """Median ms per candidate on its runtime at the model's example inputs (all of them), timed by
    ``bench``'s loop (:func:`netsculpt.runtimes.bench.time_alternating`: its clock, its alternating
    rounds), so the figures compare with ``netsculpt bench`` and the latency guards."""
    import statistics

    from netsculpt.runtimes.bench import time_alternating

    inputs = as_tuple(example_inputs)

    def prepare(m: nn.Module) -> Callable[[], Prepared]:
        runtime = timing_runtime(m) if getattr(m, "deployed_runtime", None) else "torch"
        return lambda: get_runtime(runtime).prepare(m, inputs, threads)

    samples = time_alternating(
        {name: prepare(m) for name, m in models.items()},
        threads=threads,
        runs=runs,
        warmup=3,
        rounds=rounds,
        models=list(models.values()),
    )
    return {name: statistics.median([t for times in per for t in times]) for name, per in samples.items()}


def compare_int8(
    model: nn.Module,
    example: Any,
    data: Iterable[Any],
    out_dir: str | os.PathLike[str],
    *,
    task: Task | str | None = None,
    runtimes: tuple[str, ...] = INT8_RUNTIMES,
    calib_batches: int = 8,
    select_batches: int = 8,
    threads: int = 1,
    runs: int = 30,
) -> tuple[dict[str, nn.Module], list[dict[str, Any]], float]:
    """int8 on each runtime into ``out_dir/candidates/<runtime>``: (models, one row each, float score).

    ``example`` is the model's example input, or the tuple of them for a model with several. The float
    model and each candidate are scored by ``task``'s evaluator (default classification) on the
    ``(inputs, targets)`` batches after the calibration ones; the score is its headline ``metric`` as a
    fraction, kept under ``heldout_accuracy`` with the metric's name under ``metric``. A runtime that
    cannot quantize or run the model gets a row with ``error`` instead of numbers.
    """
    from netsculpt.tasks import get_task

    task = get_task(task)
    several = len(as_tuple(example)) > 1
    batches = list(itertools.islice(data, calib_batches + select_batches))
    if len(batches) <= calib_batches:
        raise DataError(
            f"int8 selection needs more than calib_batches={calib_batches} training batches (the ones after "
            f"them are held out to score candidates); the loader gave {len(batches)}"
        )
    held = batches[calib_batches:]
    unlabelled = [b for b in held if not (isinstance(b, list | tuple) and len(b) >= 2)]
    if unlabelled:
        raise DataError(
            "int8 selection scores candidates on held-out (inputs, targets) batches, but the loader yielded "
            f"{a_type(unlabelled[0])} without targets; give a loader of labelled batches (with "
            "several inputs: ((x0, x1, ...), targets))"
        )
    from netsculpt.weights.int8_runtimes import calibration_batches

    calibration = calibration_batches(batches[:calib_batches], calib_batches)
    float_score = _score(task, model, held, several)
    models: dict[str, nn.Module] = {}
    rows: list[dict[str, Any]] = []
    for runtime in runtimes:
        row: dict[str, Any] = {"runtime": runtime, "metric": task.metric}
        try:
            q = quantize_on(runtime, model, example, calibration, Path(out_dir) / "candidates" / runtime)
            row["heldout_accuracy"] = _score(task, q, held, several)
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
    return models, rows, float_score


def pick_fastest(rows: list[dict[str, Any]], float_acc: float, tolerance_pp: float) -> dict[str, Any]:
    """The fastest row within ``tolerance_pp`` percentage points of the float model's score (accuracy,
    or the row's ``metric``), or an error naming the misses."""
    ok = [r for r in rows if "latency_ms" in r and 100 * (float_acc - r["heldout_accuracy"]) <= tolerance_pp]
    if not ok:
        metric = next((r["metric"] for r in rows if "metric" in r), "accuracy")
        detail = "; ".join(
            f"{r['runtime']}: {r['error']}"
            if "error" in r
            else f"{r['runtime']}: {r['heldout_accuracy']:.2%}"
            for r in rows
        )
        raise ConfigError(
            f"no int8 runtime kept {metric} within tolerance_pp={tolerance_pp} of the float model's "
            f"{float_acc:.2%} on held-out training batches ({detail}); raise tolerance_pp or calib_batches"
        )
    return min(ok, key=lambda r: r["latency_ms"])


def promote(candidate_dir: Path, out: Path) -> None:
    """Move the chosen artefact's files into the stage folder (the runner loads them from there)."""
    for item in sorted(candidate_dir.iterdir(), key=lambda p: p.suffix == ".xml"):  # an IR's .bin before .xml
        if item.is_file():
            os.replace(item, out / item.name)
    shutil.rmtree(candidate_dir, ignore_errors=True)
