"""int8 on each runtime side by side, and ``runtime: auto``: keep the fastest within a score tolerance.

Every candidate is calibrated on the same batches, scored on the training batches that follow them (held
out of calibration, never the test split) and timed at the example's batch on its own runtime (ONNX
Runtime, OpenVINO, or the PT2E program under ``torch.compile``), one after another in alternating
rounds, at all of the model's example inputs. Scores are the task's headline metric (accuracy, mIoU,
...) as a fraction; the fastest candidate within ``tolerance_pp`` percentage points of the float model's
is kept, its files are moved into the stage folder, the others' stay in ``candidates/``. The float model
is timed on each candidate's runtime too: when no candidate is faster than the fastest float option,
:func:`against_float` says so, and the stage keeps the float model unless told ``if_slower: int8``; when
none is within tolerance, :func:`none_within` says so and the stage keeps it unless ``if_inaccurate: fail``.
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
    keep: Any = None,
) -> nn.Module:
    """int8 ``model`` for one runtime, artefact written in ``out``; ``keep(module, name)`` False leaves a
    conv / linear float (ONNX Runtime and OpenVINO), on top of ``config``'s own filter."""
    if runtime == "onnxruntime":
        import dataclasses

        from netsculpt.weights.config import default_filter
        from netsculpt.weights.quantize import Int8Config, quantize_int8

        config = config or Int8Config(calibration_batches=len(calibration))
        if keep is not None:
            own = config.filter_fn or default_filter
            config = dataclasses.replace(config, filter_fn=lambda m, n: own(m, n) and keep(m, n))
        return quantize_int8(model, example, calibration, out, config)
    from netsculpt.weights.int8_runtimes import quantize_openvino, quantize_pt2e

    if runtime == "openvino":
        return quantize_openvino(model, example, calibration, out, keep)
    if keep is not None:
        raise ConfigError(
            f"int8 on {runtime!r} cannot leave chosen layers float; use onnxruntime or openvino"
        )
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
    models: dict[str, nn.Module],
    example_inputs: Any,
    threads: int,
    runs: int,
    rounds: int = 3,
    on: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> dict[str, float]:
    """Median ms per candidate on its runtime at the model's example inputs (all of them), timed by
    ``bench``'s loop (:func:`netsculpt.runtimes.bench.time_alternating`: its clock, its alternating
    rounds), so the figures compare with ``netsculpt bench`` and the latency guards.

    ``on`` names the runtime of a candidate that is not an artefact (the float model on ONNX Runtime,
    ...; default PyTorch eager). With ``errors`` a candidate that cannot be prepared is left out and its
    reason kept there; without it the error propagates."""
    import statistics

    from netsculpt.runtimes.bench import time_alternating

    inputs = as_tuple(example_inputs)

    def prepare(name: str, m: nn.Module) -> Callable[[], Prepared]:
        runtime = timing_runtime(m) if getattr(m, "deployed_runtime", None) else (on or {}).get(name, "torch")
        return lambda: get_runtime(runtime).prepare(m, inputs, threads)

    def failed(name: str, exc: Exception) -> None:
        if errors is not None:
            errors[name] = first_line(exc)

    unique = list({id(m): m for m in models.values()}.values())  # the float model once, however often timed
    samples = time_alternating(
        {name: prepare(name, m) for name, m in models.items()},
        threads=threads,
        runs=runs,
        warmup=3,
        rounds=rounds,
        models=unique,
        on_error=None if errors is None else failed,
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
    part: str | None = None,
) -> tuple[dict[str, nn.Module], list[dict[str, Any]], float]:
    """int8 on each runtime into ``out_dir/candidates/<runtime>``: (models, one row each, float score).

    ``example`` is the model's example input, or the tuple of them for a model with several. The float
    model and each candidate are scored by ``task``'s evaluator (default classification) on the
    ``(inputs, targets)`` batches after the calibration ones; the score is its headline ``metric`` as a
    fraction, kept under ``heldout_accuracy`` with the metric's name under ``metric``. A runtime that
    cannot quantize or run the model gets a row with ``error`` instead of numbers. With ``task=
    "detection"`` the candidates are the detector with an int8 backbone, or backbone and head (``part``,
    ``int8_detector``), scored by mAP and timed whole on PyTorch eager.
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
    if task.name == "detection":  # the backbone is int8, the detector around it float
        from netsculpt.weights.int8_detector import compare_detector_int8

        out = Path(out_dir)
        return compare_detector_int8(
            model, example, batches, calib_batches, out, task, runtimes, threads, runs, part
        )
    from netsculpt.weights.int8_runtimes import calibration_batches

    calibration = calibration_batches(batches[:calib_batches], calib_batches)
    float_score = _score(task, model, held, several)
    models, rows = candidate_rows(
        runtimes,
        task.metric,
        lambda runtime: quantize_on(
            runtime, model, example, calibration, Path(out_dir) / "candidates" / runtime
        ),
        lambda q: _score(task, q, held, several),
        lambda q: q.size_bytes,
    )
    if models:
        _time_rows(rows, model, models, example, threads, runs)
    return models, rows, float_score


def candidate_rows(
    runtimes: tuple[str, ...],
    metric: str,
    quantize: Callable[[str], nn.Module],
    score: Callable[[nn.Module], float],
    size: Callable[[nn.Module], int],
) -> tuple[dict[str, nn.Module], list[dict[str, Any]]]:
    """One row per runtime: its int8 model's held-out score and size, or the reason it has none (shared
    by classifiers / segmenters and detectors, whose int8 part is the backbone)."""
    models: dict[str, nn.Module] = {}
    rows: list[dict[str, Any]] = []
    for runtime in runtimes:
        row: dict[str, Any] = {"runtime": runtime, "metric": metric}
        try:
            q = quantize(runtime)
            row["heldout_accuracy"] = score(q)
            row["size_bytes"] = size(q)
            models[runtime] = q
        except (ConfigError, RuntimeUnsupported) as exc:
            row["error"] = str(exc)
        except Exception as exc:  # an exporter's or quantizer's own failure is a row, not a crash
            row["error"] = f"int8 on {runtime} failed: {first_line(exc)}"
        rows.append(row)
    return models, rows


def _time_rows(
    rows: list[dict[str, Any]],
    model: nn.Module,
    models: dict[str, nn.Module],
    example: Any,
    threads: int,
    runs: int,
) -> None:
    """Each candidate's ms on its runtime beside the float model's on that same runtime (``float_ms``,
    ``float_runtime``) and on PyTorch eager (``float_eager_ms``): int8 is not always faster than float
    (ShuffleNet-v2 int8 on small images was 1.3-2.2x slower), so ``runtime: auto`` compares with both."""
    float_on = {f"float@{rt}": timing_runtime(q) for rt, q in models.items()}
    floats = {name: model for name, rt in float_on.items() if rt != "torch"}  # eager: "float" below
    errors: dict[str, str] = {}
    latency = _latency(
        {"float": model, **floats, **models}, example, threads, runs, on=float_on, errors=errors
    )
    for row in rows:
        runtime = row["runtime"]
        if runtime in errors:
            row["error"] = f"int8 on {runtime} did not run: {errors[runtime]}"
        if runtime not in latency:
            continue
        row["latency_ms"] = latency[runtime]
        row["float_runtime"] = float_on[f"float@{runtime}"]
        key = "float" if row["float_runtime"] == "torch" else f"float@{runtime}"
        if key in latency:
            row["float_ms"] = latency[key]
            row["speedup_vs_float"] = latency[key] / latency[runtime]
        else:
            row["float_error"] = errors.get(key, "not timed")
        if "float" in latency:
            row["float_eager_ms"] = latency["float"]
            row["speedup_vs_float_eager"] = latency["float"] / latency[runtime]


def _within(rows: list[dict[str, Any]], float_acc: float, tolerance_pp: float) -> list[dict[str, Any]]:
    """The timed rows whose score is within ``tolerance_pp`` percentage points of the float model's."""
    lost = {id(r): 100 * (float_acc - r["heldout_accuracy"]) for r in rows if "latency_ms" in r}
    return [r for r in rows if id(r) in lost and lost[id(r)] <= tolerance_pp]


def _misses(rows: list[dict[str, Any]], float_acc: float, tolerance_pp: float) -> str:
    """Why no candidate qualified: the metric, the float score and each candidate's score or error."""
    metric = next((r["metric"] for r in rows if "metric" in r), "accuracy")
    detail = "; ".join(
        f"{r['runtime']}: {r['error']}" if "error" in r else f"{r['runtime']}: {r['heldout_accuracy']:.2%}"
        for r in rows
    )
    return (
        f"no int8 runtime kept {metric} within tolerance_pp={tolerance_pp} of the float model's "
        f"{float_acc:.2%} on held-out training batches ({detail})"
    )


def pick_fastest(rows: list[dict[str, Any]], float_acc: float, tolerance_pp: float) -> dict[str, Any]:
    """The fastest row within ``tolerance_pp`` percentage points of the float model's score (accuracy,
    or the row's ``metric``), or an error naming the misses."""
    ok = _within(rows, float_acc, tolerance_pp)
    if not ok:
        raise ConfigError(f"{_misses(rows, float_acc, tolerance_pp)}; raise tolerance_pp or calib_batches")
    return min(ok, key=lambda r: r["latency_ms"])


def none_within(rows: list[dict[str, Any]], float_acc: float, tolerance_pp: float) -> dict[str, Any] | None:
    """The decision record when no candidate is within ``tolerance_pp`` (the stage keeps the float model,
    as it does when int8 is slower), or None when one is."""
    if _within(rows, float_acc, tolerance_pp):
        return None
    reason = (
        f"kept the float model: every int8 candidate lost more than tolerance_pp={tolerance_pp}: "
        f"{_misses(rows, float_acc, tolerance_pp)} (raise tolerance_pp or calib_batches for int8, or set "
        "if_inaccurate: fail to stop the run instead)"
    )
    return {"keep": "float", "int8_accurate": False, "int8_runtime": None, "int8_ms": None, "reason": reason}


def against_float(
    best: dict[str, Any], rows: list[dict[str, Any]], if_slower: str = "float"
) -> dict[str, Any]:
    """Is the chosen int8 candidate faster than the fastest float option (the float model on any runtime a
    candidate was timed on, or PyTorch eager)? The record says which model the stage keeps and why:
    ``keep`` is ``"int8"`` when it is faster, else what ``if_slower`` asks (``"float"`` or ``"int8"``)."""
    options = {r["float_runtime"]: r["float_ms"] for r in rows if "float_ms" in r}
    eager = next((r["float_eager_ms"] for r in rows if "float_eager_ms" in r), None)
    if eager is not None:
        options.setdefault("torch", eager)
    int8 = f"int8 on {best['runtime']} ({best['latency_ms']:.3f} ms)"
    if not options:
        return {"keep": "int8", "int8_faster": None, "reason": f"kept {int8}: the float model was not timed"}
    float_runtime, float_ms = min(options.items(), key=lambda kv: kv[1])
    faster = best["latency_ms"] < float_ms
    record = {"int8_faster": faster, "float_runtime": float_runtime, "float_ms": float_ms}
    fastest_float = f"the float model on {float_runtime} ({float_ms:.3f} ms)"
    if faster:
        reason = f"kept {int8}: {float_ms / best['latency_ms']:.2f}x faster than {fastest_float}"
        return {"keep": "int8", **record, "reason": reason}
    slower = f"{best['latency_ms'] / float_ms:.2f}x SLOWER than {fastest_float}"
    if if_slower == "int8":
        reason = f"kept {int8} as if_slower: int8 asks, though it is {slower}"
        return {"keep": "int8", **record, "reason": reason}
    reason = (
        f"kept the float model: no int8 candidate within tolerance is faster than it; the fastest, {int8}, "
        f"is {slower} (set if_slower: int8 to keep int8 anyway, for its size)"
    )
    return {"keep": "float", **record, "reason": reason}


def promote(candidate_dir: Path, out: Path) -> None:
    """Move the chosen artefact's files into the stage folder (the runner loads them from there): an IR's
    .bin before its .xml, a detector's int8_detector.json after its graph."""
    from netsculpt.runtimes.artefacts import DETECTOR_NAME

    for item in sorted(candidate_dir.iterdir(), key=lambda p: (p.name == DETECTOR_NAME, p.suffix == ".xml")):
        if item.is_file():
            os.replace(item, out / item.name)
    shutil.rmtree(candidate_dir, ignore_errors=True)
