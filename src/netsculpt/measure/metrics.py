"""``Metrics``: everything a report says about one model, and :func:`measure`, which fills it in.

One value flows out of the measure stage before and after compression, so the report compares like
with like: same inputs, same conventions, same machine (its calibration travels with the timings).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from netsculpt import checks
from netsculpt.errors import ConfigError, TraceError
from netsculpt.graph.snapshot import left_as_found
from netsculpt.measure._inputs import ExampleInputs, as_tuple, at_batch, batch_of, check_module
from netsculpt.measure.calibration import Calibration, cpu_calibration
from netsculpt.measure.latency import check_counts, measure_latency
from netsculpt.measure.macs import LayerMetrics, count_macs, count_params
from netsculpt.measure.memory import peak_activation_bytes
from netsculpt.measure.onnx_runtime import export_onnx, onnx_latency
from netsculpt.measure.size import serialized_size_bytes
from netsculpt.parallel import unwrap_parallel


@dataclass
class Metrics:
    """Cost of a model: counts on the example inputs, size on disk, measured latencies.

    ``macs``, ``peak_activation_bytes`` and ``layers`` describe one forward on the example inputs as
    given, whose batch size is ``batch_size`` (None: structured inputs, where netsculpt cannot tell the
    batch); ``macs_per_sample`` divides by it. ``latency`` maps a runtime ("torch", "onnxruntime") to
    batch size to median milliseconds; ``latency_ms`` repeats the PyTorch batch-1 figure, the one
    headline number. ``calibration`` and ``threads`` record the machine speed and torch thread count
    the timings were taken with.
    """

    params: int
    macs: int
    peak_activation_bytes: int
    size_bytes: int
    latency_ms: float | None
    latency: dict[str, dict[int, float]]
    layers: list[LayerMetrics]
    calibration: Calibration | None = None
    threads: int | None = None
    unavailable: dict[str, str] = field(default_factory=dict)  # what could not be measured, and why
    batch_size: int | None = None  # of the example the counts describe; latency has its own batches

    @property
    def macs_per_sample(self) -> float | None:
        """MACs for one sample: what compares with another batch size's count (None: batch unknown)."""
        return self.macs / self.batch_size if self.batch_size else None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only; batch sizes become string keys as JSON requires."""
        return {
            "params": self.params,
            "macs": self.macs,
            "peak_activation_bytes": self.peak_activation_bytes,
            "size_bytes": self.size_bytes,
            "latency_ms": self.latency_ms,
            "latency": {
                rt: {str(b): ms for b, ms in by_batch.items()} for rt, by_batch in self.latency.items()
            },
            "layers": [layer.to_dict() for layer in self.layers],
            "calibration": self.calibration.to_dict() if self.calibration else None,
            "threads": self.threads,
            "unavailable": dict(self.unavailable),
            "batch_size": self.batch_size,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Metrics:
        """Inverse of :meth:`to_dict`, for reports that read ``results.json`` back."""
        try:
            layers = [
                LayerMetrics(
                    name=d["name"],
                    type=d["type"],
                    params=int(d["params"]),
                    macs=int(d["macs"]),
                    output_shape=tuple(d["output_shape"]) if d.get("output_shape") is not None else None,
                )
                for d in data.get("layers", [])
            ]
            calibration = Calibration(**data["calibration"]) if data.get("calibration") else None
            return cls(
                params=int(data["params"]),
                macs=int(data["macs"]),
                peak_activation_bytes=int(data["peak_activation_bytes"]),
                size_bytes=int(data["size_bytes"]),
                latency_ms=data.get("latency_ms"),
                latency={
                    rt: {int(b): float(ms) for b, ms in v.items()}
                    for rt, v in data.get("latency", {}).items()
                },
                layers=layers,
                calibration=calibration,
                threads=data.get("threads"),
                unavailable={str(k): str(v) for k, v in data.get("unavailable", {}).items()},
                batch_size=int(data["batch_size"]) if data.get("batch_size") is not None else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"not a netsculpt metrics record ({type(exc).__name__}: {exc})") from None


def measure(
    model: nn.Module,
    example_inputs: ExampleInputs,
    *,
    latency: bool = True,
    onnx: bool = False,
    batch_sizes: Sequence[int] = (1,),
    runs: int = 30,
    warmup: int = 5,
) -> Metrics:
    """Measure ``model`` on ``example_inputs``: params, MACs, peak activations, size, and latency.

    Counts (MACs, activations, layer shapes) describe the example inputs as given, at their own batch
    size (``Metrics.batch_size``; the table says "MACs (batch 8)"). Latency is timed
    for each of ``batch_sizes``, with batches built by repeating the first example sample along dim 0;
    batch 1 is always timed so ``latency_ms`` is set. ``onnx=True`` also exports the model once (with a
    symbolic batch dimension) and times ONNX Runtime at the same batch sizes; a model that runs but
    cannot be exported gets ``unavailable["onnxruntime"]`` (the exporters' reason) instead of a timing.
    Structured inputs (a detector's ``([image],)``) are timed as given, at batch size 1 only. The
    model is left as it was: what its forwards write into it (cached scales, anchors) is put back.
    """
    from netsculpt.runtimes.artefacts import refuse_artefact

    refuse_artefact(check_module(model), "ns.measure")  # an int8 artefact counted 0 params, 0 MACs, 16 B
    model = unwrap_parallel(model, "ns.measure")  # layer names without "module."
    inputs = as_tuple(example_inputs)
    checks.flag(latency, "latency", "ns.measure")
    checks.flag(onnx, "onnx", "ns.measure")
    sizes = sorted({1, *checks.wholes(batch_sizes, "batch_sizes", "ns.measure")})  # 8 means [8]
    if latency or onnx:
        check_counts(runs, warmup)
    with left_as_found(model, "while it was measured"):
        return _measure(model, inputs, latency, onnx, sizes, runs, warmup)


def _measure(
    model: nn.Module,
    inputs: tuple[Any, ...],
    latency: bool,
    onnx: bool,
    sizes: list[int],
    runs: int,
    warmup: int,
) -> Metrics:
    macs, layers = count_macs(model, inputs)
    metrics = Metrics(
        params=count_params(model),
        macs=macs,
        peak_activation_bytes=peak_activation_bytes(model, inputs),
        size_bytes=serialized_size_bytes(model),
        latency_ms=None,
        latency={},
        layers=layers,
        batch_size=batch_of(inputs),
    )
    if not (latency or onnx):
        return metrics
    metrics.calibration = cpu_calibration()
    metrics.threads = torch.get_num_threads()
    if latency:
        metrics.latency["torch"] = {
            b: measure_latency(model, at_batch(inputs, b), runs=runs, warmup=warmup) for b in sizes
        }
        metrics.latency_ms = metrics.latency["torch"][1]
    if onnx:
        with tempfile.TemporaryDirectory(prefix="netsculpt-onnx-") as tmp:
            try:
                path = export_onnx(model, at_batch(inputs, 1), Path(tmp) / "model.onnx")
            except TraceError as exc:  # the model runs but cannot be exported: say so in the report
                # one line, with the exporters' reasons (the first line alone ended at "inputs [...]:")
                metrics.unavailable["onnxruntime"] = " ".join(
                    filter(None, map(str.strip, str(exc).splitlines()))
                )
                return metrics
            metrics.latency["onnxruntime"] = {
                b: onnx_latency(path, at_batch(inputs, b), runs=runs, warmup=warmup) for b in sizes
            }
    return metrics
