"""Wall-clock latency of a model, in PyTorch eager or in ONNX Runtime.

The median of ``runs`` timed calls after ``warmup`` untimed ones: warm-up absorbs one-off costs
(allocator growth, oneDNN primitive creation, lazy imports), and the median ignores the odd slow call
on a shared machine. Torch keeps its current thread count so the number describes the process as the
user runs it; print :func:`netsculpt.measure.cpu_calibration` beside it to compare across machines.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from netsculpt.errors import ConfigError
from netsculpt.graph.snapshot import left_as_found
from netsculpt.measure._inputs import ExampleInputs, as_tuple, check_module, run_forward
from netsculpt.modes import eval_mode

RUNTIMES = ("torch", "compile", "onnxruntime", "openvino")  # the names of netsculpt.runtimes' registry


def check_counts(runs: int, warmup: int) -> None:
    """A latency median needs whole numbers: runs >= 1 timed calls after warmup >= 0 untimed ones."""
    from netsculpt.checks import whole

    whole(runs, "runs", minimum=1)
    whole(warmup, "warmup", minimum=0)


def median_ms(call: Callable[[], object], runs: int, warmup: int) -> float:
    """Median wall time of ``call()`` in milliseconds, after ``warmup`` untimed calls."""
    check_counts(runs, warmup)
    for _ in range(warmup):
        call()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def measure_latency(
    model: nn.Module,
    example_inputs: ExampleInputs,
    *,
    runs: int = 30,
    warmup: int = 5,
    runtime: str = "torch",
) -> float:
    """Median milliseconds per forward on ``example_inputs`` as given (their batch size is kept).

    ``runtime="onnxruntime"`` exports the model to a temporary ONNX file first and times an ONNX
    Runtime CPU session on it; any other name of :mod:`netsculpt.runtimes` ("compile", "openvino") is
    prepared by that runtime with torch's current thread count. What the forwards write into the model
    is put back afterwards.
    """
    check_module(model, "time")
    inputs = as_tuple(example_inputs)
    check_counts(runs, warmup)
    with left_as_found(model, "while it was timed"):
        return _median_latency(model, inputs, runs, warmup, runtime)


def _median_latency(model: nn.Module, inputs: tuple[Any, ...], runs: int, warmup: int, runtime: str) -> float:
    deployed = (
        getattr(model, "deployed_runtime", None) is not None
    )  # an int8 artefact: its own runtime runs it
    if runtime == "torch" and not deployed:
        with eval_mode(model), torch.no_grad():
            run_forward(model, inputs)  # fail with a clear error before timing anything
            return median_ms(lambda: model(*inputs), runs, warmup)
    if runtime == "onnxruntime" and not deployed:
        from netsculpt.measure.onnx_runtime import export_onnx, onnx_latency

        with tempfile.TemporaryDirectory(prefix="netsculpt-onnx-") as tmp:
            path = export_onnx(model, inputs, Path(tmp) / "model.onnx")
            return onnx_latency(path, inputs, runs=runs, warmup=warmup)
    from netsculpt.runtimes import RuntimeUnsupported, get_runtime

    impl = get_runtime(runtime)  # "compile", "openvino", aliases; unknown names list the registered ones
    try:
        prepared = impl.prepare(model, inputs, torch.get_num_threads())
    except RuntimeUnsupported as exc:
        hint = ""
        if deployed:
            from netsculpt.runtimes.artefacts import timing_runtime

            hint = f"; time it with runtime={timing_runtime(model)!r}"
        raise ConfigError(f"cannot time the model on {runtime}: {exc}{hint}") from None
    try:
        return median_ms(prepared.call, runs, warmup)
    finally:
        prepared.close()
