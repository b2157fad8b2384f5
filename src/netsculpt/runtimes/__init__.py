"""CPU runtimes in one registry: PyTorch eager, ``torch.compile`` (inductor), ONNX Runtime, OpenVINO.

``get_runtime(name).prepare(model, x, threads)`` gives a timed call on that runtime; ``bench_model``
times a model on several runtimes, thread counts and batch sizes. Used by latency tables
(:class:`netsculpt.measure.LatencyModel`), ``netsculpt bench``, int8 selection and the report. OpenVINO
is optional: without it its rows say ``pip install openvino nncf``. See docs/measure.md.
"""

from netsculpt.runtimes import onnxrt, openvino_rt, torch_rt  # noqa: F401  (registration)
from netsculpt.runtimes.base import (
    RUNTIMES,
    Prepared,
    Runtime,
    RuntimeUnsupported,
    get_runtime,
    parse_runtimes,
    runtime_names,
)
from netsculpt.runtimes.bench import BenchRow, all_threads, bench_model

__all__ = [
    "RUNTIMES",
    "BenchRow",
    "Prepared",
    "Runtime",
    "RuntimeUnsupported",
    "all_threads",
    "bench_model",
    "get_runtime",
    "parse_runtimes",
    "runtime_names",
]
