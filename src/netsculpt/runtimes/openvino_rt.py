"""OpenVINO (the ``openvino`` package, CPU plugin) as a registry runtime.

OpenVINO reads the same ONNX file ONNX Runtime runs (or an OpenVINO IR artefact), reshaped to the
example's static shapes, and compiles it with ``INFERENCE_NUM_THREADS=threads``, the latency hint and
f32 precision: on CPUs with bf16 or AMX units OpenVINO would otherwise run float models in bf16, and a
float-vs-float comparison would not be one. int8 models keep their int8 kernels under the f32 hint.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from netsculpt.errors import ConfigError
from netsculpt.measure._inputs import as_tuple, check_module, is_flat
from netsculpt.runtimes.base import (
    INSTALL_OPENVINO,
    Prepared,
    Runtime,
    RuntimeUnsupported,
    first_line,
    register,
)
from netsculpt.runtimes.onnxrt import onnx_file
from netsculpt.runtimes.torch_rt import check_owner


def import_openvino() -> Any:
    """``openvino``, or a clear error saying how to install it (it is an optional dependency)."""
    try:
        import openvino
    except ImportError:
        raise RuntimeUnsupported(f"OpenVINO is not installed: {INSTALL_OPENVINO}") from None
    return openvino


def compile_model(model: Any, threads: int, inputs: tuple[Any, ...] | None = None) -> Any:
    """Compile an ``openvino.Model`` (or a path) for the CPU with ``threads`` threads."""
    ov = import_openvino()
    core = ov.Core()
    if not isinstance(model, ov.Model):
        model = core.read_model(str(model))
    if inputs is not None and is_flat(inputs) and len(model.inputs) == len(inputs):
        model.reshape({port.get_any_name(): list(x.shape) for port, x in zip(model.inputs, inputs)})
    config = {
        "INFERENCE_NUM_THREADS": threads,
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_PRECISION_HINT": "f32",
    }
    return core.compile_model(model, "CPU", config)


def feeds(compiled: Any, inputs: tuple[Any, ...]) -> list[np.ndarray]:
    """The example's leaves for the compiled model's inputs, by ONNX Runtime's rule (number leaves such as
    ``{"scale": 2.0}`` are inputs of a TorchScript export too), so both runtimes take the same examples."""
    from netsculpt.measure.onnx_runtime import feed_leaves

    names = [port.get_any_name() for port in compiled.inputs]
    try:
        return feed_leaves(inputs, names, "OpenVINO")
    except ConfigError as exc:
        raise RuntimeUnsupported(str(exc)) from None


class OpenVinoRuntime(Runtime):
    name, label = "openvino", "OpenVINO"

    def _available(self) -> str | None:
        try:
            import_openvino()
        except RuntimeUnsupported as exc:
            return str(exc)
        return None

    def prepare(self, model: nn.Module, example_inputs: Any, threads: int = 1) -> Prepared:
        self.check()
        check_module(model)
        # an int8 artefact of another runtime is refused like every runtime refuses it: OpenVINO could
        # read ONNX Runtime's QDQ file, but that times OpenVINO's kernels, not the artefact's own runtime
        owner = check_owner(model, "openvino")
        inputs = as_tuple(example_inputs)
        tmp = tempfile.TemporaryDirectory(prefix="netsculpt-ov-")
        try:
            source = model.path if owner == "openvino" else onnx_file(model, inputs, Path(tmp.name))
            compiled = compile_model(source, threads, inputs)
            request = compiled.create_infer_request()
            bound = feeds(compiled, inputs)
            request.infer(bound)
        except RuntimeUnsupported:
            tmp.cleanup()
            raise
        except Exception as exc:  # OpenVINO raises RuntimeError / its own types for unsupported ops
            tmp.cleanup()
            raise RuntimeUnsupported(f"OpenVINO cannot run the model: {first_line(exc)}") from None

        def run(other: tuple[Any, ...]) -> list[torch.Tensor]:
            out = request.infer(feeds(compiled, other))
            return [torch.from_numpy(np.array(out[port])) for port in compiled.outputs]

        return Prepared(self.name, lambda: request.infer(bound), run, close=tmp.cleanup)


register(OpenVinoRuntime())
