"""int8 post-training static quantization through ONNX Runtime, calibrated on data.

The model is exported to ONNX (``netsculpt.measure.export_onnx``), activation ranges are calibrated on
a few batches, and conv / linear (Conv, Gemm, MatMul) nodes get int8 weights (per output channel) and
uint8 activations. Why ONNX Runtime rather than PyTorch's PT2E flow: PT2E lives in torchao now (not a
netsculpt dependency) and its converted graph only runs int8 kernels after ``torch.compile`` with the
inductor backend, while ONNX Runtime's QLinearConv / MatMulInteger kernels (VNNI on this CPU) run
int8 straight away; ``benchmarks/weights.py`` times both side by side.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from netsculpt.errors import CheckpointError, ConfigError, DataError
from netsculpt.measure import export_onnx
from netsculpt.measure.onnx_runtime import _session
from netsculpt.weights.config import FilterFn, default_filter

METHODS = ("minmax", "percentile", "entropy")
FORMATS = ("qdq", "qoperator")
QUANTIZED_OPS = ("Conv", "Gemm", "MatMul")


@dataclass
class Int8Config:
    """``calibration_batches`` batches of the calibration data set the activation ranges by ``method``.

    ``op_types`` are the ONNX ops given int8 kernels; adding ``"Add"`` keeps residual sums in int8 too
    (no measurable gain on ResNet-20 here, see docs/weights.md). ``int4_layers``: module names whose
    weights are stored int4 per output channel instead (ONNX INT4 QDQ: half the weight bytes; ONNX
    Runtime dequantizes them and runs that layer in float, so it is a size choice, not a speed one).
    """

    calibration_batches: int = 8
    method: str = "minmax"
    per_channel: bool = True
    quant_format: str = "qdq"
    op_types: tuple[str, ...] = QUANTIZED_OPS
    filter_fn: FilterFn | None = field(default=None, compare=False, repr=False)
    int4_layers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.int4_layers and (self.quant_format != "qdq" or not self.per_channel):
            raise ConfigError("int4_layers needs quant_format='qdq' and per_channel=True")
        if not isinstance(self.calibration_batches, int) or self.calibration_batches < 1:
            raise ConfigError(
                f"calibration_batches must be a positive integer, got {self.calibration_batches!r}"
            )
        if self.method not in METHODS:
            raise ConfigError(
                f"calibration method {self.method!r} is unknown; use one of {', '.join(METHODS)}"
            )
        if self.quant_format not in FORMATS:
            raise ConfigError(
                f"quant_format {self.quant_format!r} is unknown; use one of {', '.join(FORMATS)}"
            )


class OnnxModule(nn.Module):
    """An ONNX file run by ONNX Runtime behind ``nn.Module``'s call, so ``evaluate`` and loops work on it."""

    deployed_runtime = "onnxruntime"  # where the runtime registry may run it (netsculpt.runtimes)

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__()
        self.path = Path(path)
        self.session = _session(self.path)
        self.input_names = [i.name for i in self.session.get_inputs()]

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        feeds = {name: x.detach().cpu().numpy() for name, x in zip(self.input_names, inputs)}
        try:
            outputs = self.session.run(None, feeds)
        except Exception as exc:  # ONNX Runtime's own error types: a graph that loads but cannot run
            first = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
            raise CheckpointError(
                f"ONNX Runtime cannot run {str(self.path)!r} on these inputs: {first}"
            ) from None
        return torch.from_numpy(outputs[0])

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size


def check_float32(model: nn.Module) -> None:
    """int8 calibration and kernels start from a float32 graph: ONNX Runtime has no int8 path from a
    float64 / float16 export (NOT_IMPLEMENTED) and OpenVINO writes an IR it cannot load, so refuse first."""
    for name, tensor in itertools.chain(model.named_parameters(), model.named_buffers()):
        if tensor.is_floating_point() and tensor.dtype != torch.float32:
            raise ConfigError(
                f"int8 quantization starts from a float32 model, but {name} is "
                f"{str(tensor.dtype).removeprefix('torch.')}; quantize a float32 copy "
                "(copy.deepcopy(model).float()) instead"
            )


def check_int8_io(model: nn.Module, example_inputs: Any, runtime: str) -> None:
    """Refuse, before any file is written, a model whose inputs or outputs an int8 path cannot carry.

    Calibration feeds one tensor per batch and every path's artefact takes one input, so a second input
    failed deep inside (ONNX Runtime: a raw ValueError; OpenVINO, PT2E: AttributeErrors). The ONNX Runtime
    and OpenVINO artefacts return their graph's first output only, so a model with two outputs (a dict of
    logits and boxes) would come back as a bare first tensor, silently.
    """
    from netsculpt.measure._inputs import as_tuple, describe, run_forward, tensor_leaves
    from netsculpt.modes import eval_mode

    inputs = as_tuple(example_inputs)
    name = type(model).__name__
    if len(inputs) != 1 or not isinstance(inputs[0], torch.Tensor):
        raise ConfigError(
            f"int8 on {runtime} takes a model with one tensor input, but {name} is given "
            f"[{describe(inputs)}]; wrap it in a module whose forward takes one tensor (and builds the "
            "rest), or keep it float"
        )
    with eval_mode(model), torch.no_grad():
        outputs = len(tensor_leaves(run_forward(model, inputs)))
    if outputs > 1 and runtime in ("onnxruntime", "openvino"):
        raise ConfigError(
            f"int8 on {runtime} keeps one output, but {name} returns {outputs} tensors; quantize with "
            "runtime 'torch' (PT2E keeps the output structure), or wrap the model to return one tensor"
        )


def calibration_input(x: torch.Tensor) -> torch.Tensor:
    """A calibration batch as the float32 export takes it: floats cast to float32, integer inputs (token
    ids for an ``nn.Embedding``) kept as they are, since the graph's input is an integer tensor."""
    x = x.detach().cpu()
    return x.float() if x.is_floating_point() else x


def first_batch_or_refuse(data: Iterable[Any]) -> Iterable[Any]:
    """``data`` with its first batch checked to exist before any file is written or exported."""
    batches = iter(data)
    first = next(batches, None)
    if first is None:
        raise DataError("the calibration data yielded no batch; pass a loader with at least one batch")
    return itertools.chain([first], batches)


class _Reader:
    """ONNX Runtime's calibration data reader over the first batches of a loader."""

    def __init__(self, data: Iterable[Any], input_name: str, batches: int) -> None:
        self.batches = iter(itertools.islice(data, batches))
        self.input_name = input_name

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self.batches, None)
        if batch is None:
            return None
        inputs = batch[0] if isinstance(batch, list | tuple) else batch
        return {self.input_name: calibration_input(inputs).numpy()}

    def rewind(self) -> None:  # part of the reader protocol; calibration reads the data once
        raise DataError("calibration data can be read only once")


def node_module(node_name: str, modules: set[str]) -> str | None:
    """The module an exported node belongs to: ``/layer1/layer1.0/conv1/Conv`` -> ``layer1.0.conv1``.

    The TorchScript exporter names scopes either by attribute (``conv1``) or by dotted path
    (``layer1.0``, ``shortcut.0``); each segment is resolved against the real module names.
    """
    current = ""
    for segment in node_name.strip("/").split("/")[:-1]:
        parent = current.rpartition(".")[0]
        for candidate in (f"{current}.{segment}" if current else segment, segment, f"{parent}.{segment}"):
            if candidate in modules:
                current = candidate
                break
        else:
            return None
    return current or None


def _int4_overrides(
    model: nn.Module, prepared: Path, layers: tuple[str, ...], excluded: list[str]
) -> dict[str, list[dict[str, Any]]]:
    """ONNX Runtime's per-tensor overrides putting the weights of ``layers`` in int4, per output channel."""
    if not layers:
        return {}
    import onnx
    from onnxruntime.quantization import QuantType

    modules = dict(model.named_modules())
    unknown = sorted(set(layers) - set(modules))
    if unknown:
        raise ConfigError(f"int4_layers: the model has no layer {unknown[0]!r}")
    graph = onnx.load(str(prepared), load_external_data=False).graph
    weights = {i.name for i in graph.initializer}
    overrides, found = {}, set()
    for node in graph.node:
        name = node_module(node.name, set(modules))
        if node.op_type not in QUANTIZED_OPS or name not in layers or node.name in excluded:
            continue
        if len(node.input) > 1 and node.input[1] in weights:
            trans_b = any(a.name == "transB" and a.i == 1 for a in node.attribute)
            axis = 1 if node.op_type == "MatMul" or (node.op_type == "Gemm" and not trans_b) else 0
            overrides[node.input[1]] = [{"quant_type": QuantType.QInt4, "axis": axis}]
            found.add(name)
    missing = sorted(set(layers) - found)
    if missing:
        raise ConfigError(
            f"int4_layers: {missing[0]!r} is not a quantized conv / linear layer of the export "
            "(excluded by the filter, or not a Conv / Gemm / MatMul with a constant weight)"
        )
    return overrides


def _excluded_nodes(model: nn.Module, onnx_path: Path, keep: FilterFn) -> list[str]:
    import onnx

    modules = dict(model.named_modules())
    excluded = []
    for node in onnx.load(str(onnx_path), load_external_data=False).graph.node:
        if node.op_type in QUANTIZED_OPS:
            name = node_module(node.name, set(modules))
            if name is not None and not keep(modules[name], name):
                excluded.append(node.name)
    return excluded


def _export_and_quantize(
    model: nn.Module,
    example_inputs: torch.Tensor,
    calibration_data: Iterable[Any],
    config: Int8Config,
    float_path: Path,
    prepared: Path,
    partial: Path,
) -> None:
    """Export to ``float_path``, pre-process to ``prepared``, calibrate and write the int8 ``partial``."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    export_onnx(model, example_inputs, float_path)
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        try:
            quant_pre_process(str(float_path), str(prepared))
        except Exception:
            # its symbolic shape inference cannot follow some graphs (nn.MultiheadAttention's reshapes);
            # ONNX's own shape inference and the graph optimisation still run without it
            quant_pre_process(str(float_path), str(prepared), skip_symbolic_shape=True)
    excluded = _excluded_nodes(model, float_path, config.filter_fn or default_filter)
    overrides = _int4_overrides(model, prepared, config.int4_layers, excluded)
    reader = _Reader(calibration_data, "input0", config.calibration_batches)
    method = {
        "minmax": CalibrationMethod.MinMax,
        "percentile": CalibrationMethod.Percentile,
        "entropy": CalibrationMethod.Entropy,
    }[config.method]
    with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        quantize_static(
            str(prepared),
            str(partial),
            reader,
            quant_format=QuantFormat.QDQ if config.quant_format == "qdq" else QuantFormat.QOperator,
            op_types_to_quantize=list(config.op_types),
            per_channel=config.per_channel,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=method,
            nodes_to_exclude=excluded,
            extra_options={"TensorQuantOverrides": overrides} if overrides else {},
        )


def quantize_int8(
    model: nn.Module,
    example_inputs: torch.Tensor,
    calibration_data: Iterable[Any],
    out_dir: str | os.PathLike[str],
    config: Int8Config | None = None,
) -> OnnxModule:
    """Export ``model``, calibrate on ``calibration_data`` and write ``model.int8.onnx`` in ``out_dir``.

    Also leaves the float export ``model.fp32.onnx`` beside it (the reference the int8 model is
    measured against). Returns the int8 model, callable like the original.
    """
    config = config or Int8Config()
    check_float32(model)
    check_int8_io(model, example_inputs, "onnxruntime")
    calibration_data = first_batch_or_refuse(calibration_data)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    float_path = out / "model.fp32.onnx"
    prepared = out / "model.prep.onnx"
    int8_path = out / "model.int8.onnx"
    partial = out / ".model.int8.onnx.partial"  # renamed into place once complete: readers never see half
    done = False
    try:
        _export_and_quantize(model, example_inputs, calibration_data, config, float_path, prepared, partial)
        os.replace(partial, int8_path)
        done = True
    finally:  # a failed call leaves no file of its own behind: no temporaries, no lone float export
        prepared.unlink(missing_ok=True)
        partial.unlink(missing_ok=True)
        if not done:
            float_path.unlink(missing_ok=True)
    return OnnxModule(int8_path)
