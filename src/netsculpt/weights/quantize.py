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
import re
import tempfile
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
from netsculpt.runtimes.output_tree import OutputTree, graph_outputs, write_outputs
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
    """An ONNX file run by ONNX Runtime behind ``nn.Module``'s call, so ``evaluate`` and loops work on it.

    ``outputs``: the float model's output structure (:mod:`netsculpt.runtimes.output_tree`), which every
    graph output is nested back into; without it the graph's first output comes back as a single tensor.
    """

    deployed_runtime = "onnxruntime"  # where the runtime registry may run it (netsculpt.runtimes)

    def __init__(self, path: str | os.PathLike[str], outputs: OutputTree | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        self.session = _session(self.path)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.outputs = graph_outputs(outputs, len(self.session.get_outputs()), str(self.path))

    def forward(self, *inputs: torch.Tensor) -> Any:
        if len(inputs) != len(self.input_names):
            raise ConfigError(
                f"{self.path.name} takes {len(self.input_names)} input tensors "
                f"({', '.join(self.input_names)}), got {len(inputs)}; pass them positionally, in order"
            )
        feeds = {name: x.detach().cpu().numpy() for name, x in zip(self.input_names, inputs)}
        try:
            outputs = self.session.run(None, feeds)
        except Exception as exc:  # ONNX Runtime's own error types: a graph that loads but cannot run
            first = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
            raise CheckpointError(
                f"ONNX Runtime cannot run {str(self.path)!r} on these inputs: {first}"
            ) from None
        if self.outputs is None:
            return torch.from_numpy(outputs[0])
        return self.outputs.rebuild([torch.from_numpy(y) for y in outputs])

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size


def check_float32(model: nn.Module) -> None:
    """int8 calibration and kernels start from a float32 graph: ONNX Runtime has no int8 path from a
    float64 / float16 export (NOT_IMPLEMENTED) and OpenVINO writes an IR it cannot load, so refuse first."""
    from netsculpt.checks import materialised

    materialised(model, "quantize")  # its check forward would create lazy layers' weights in the model
    for name, tensor in itertools.chain(model.named_parameters(), model.named_buffers()):
        if tensor.is_floating_point() and tensor.dtype != torch.float32:
            raise ConfigError(
                f"int8 quantization starts from a float32 model, but {name} is "
                f"{str(tensor.dtype).removeprefix('torch.')}; quantize a float32 copy "
                "(copy.deepcopy(model).float()) instead"
            )


def check_int8_io(model: nn.Module, example_inputs: Any, runtime: str) -> OutputTree:
    """Refuse, before any file is written, a model whose inputs or outputs an int8 path cannot carry, and
    return its output structure.

    Inputs: every positional argument must be a tensor (calibration feeds them by the export's input
    names; a list or dict argument has no fixed graph input to feed). Outputs: the ONNX Runtime and
    OpenVINO graphs return flat tensors, which their artefacts nest back into the returned structure, so
    it must be tensors in tuples, lists and str-keyed dicts (PT2E, runtime 'torch', keeps any structure).
    """
    from netsculpt.graph.snapshot import left_as_found
    from netsculpt.measure._inputs import as_tuple, describe, run_forward
    from netsculpt.modes import eval_mode

    inputs = as_tuple(example_inputs)
    name = type(model).__name__
    if not all(isinstance(x, torch.Tensor) for x in inputs):
        raise ConfigError(
            f"int8 on {runtime} takes a model whose forward arguments are all tensors, but {name} is given "
            f"[{describe(inputs)}]; wrap it in a module whose forward takes tensors (and builds the rest), "
            "or keep it float"
        )
    with left_as_found(model, "while it was checked for int8"), eval_mode(model), torch.no_grad():
        output = run_forward(model, inputs)
    if runtime in ("onnxruntime", "openvino"):
        return OutputTree.of(output, name)
    return OutputTree({"kind": "tensor"}, 1)  # PT2E's program keeps the structure itself


def model_inputs(batch: Any, example: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """The model's inputs in a calibration batch, as :func:`calibration_input` casts them.

    A batch is the inputs or ``(inputs, targets, ...)``; with several inputs, ``inputs`` is a tuple of
    them: ``((image, depth), labels)`` or ``(image, depth)``. Each must match its example input's rank and
    non-batch dims (the export fixes them), so a label tensor taken for an input is refused here."""
    if isinstance(batch, torch.Tensor):
        inputs: Any = (batch,)
    elif isinstance(batch, list | tuple) and batch and isinstance(batch[0], list | tuple):
        inputs = tuple(batch[0])
    elif isinstance(batch, list | tuple) and len(example) > 1 and len(batch) == len(example):
        inputs = tuple(batch)
    elif isinstance(batch, list | tuple) and batch:
        inputs = (batch[0],)
    else:
        inputs = (batch,)
    shapes = ", ".join(f"(N, {', '.join(map(str, x.shape[1:]))})" for x in example)
    expected = (
        f"the model takes {len(example)} tensor inputs shaped {shapes}; yield ((input0, input1, ...), "
        "targets) or the tuple of inputs itself"
    )
    if len(inputs) != len(example) or not all(isinstance(x, torch.Tensor) for x in inputs):
        raise DataError(
            f"a calibration batch holds {len(inputs)} input(s) of types "
            f"{[type(x).__name__ for x in inputs]}, but {expected}"
        )
    for i, (x, ex) in enumerate(zip(inputs, example)):
        if x.dim() != ex.dim() or x.shape[1:] != ex.shape[1:]:
            raise DataError(f"calibration input {i} has shape {tuple(x.shape)}, but {expected}")
    return tuple(calibration_input(x) for x in inputs)


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
    """ONNX Runtime's calibration data reader over the first batches of a loader, every input by name."""

    def __init__(
        self, data: Iterable[Any], input_names: list[str], example: tuple[torch.Tensor, ...], batches: int
    ) -> None:
        self.batches = iter(itertools.islice(data, batches))
        self.input_names, self.example = input_names, example

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self.batches, None)
        if batch is None:
            return None
        inputs = model_inputs(batch, self.example)
        return {name: x.numpy() for name, x in zip(self.input_names, inputs)}

    def rewind(self) -> None:  # part of the reader protocol; calibration reads the data once
        raise DataError("calibration data can be read only once")


def node_module(node_name: str, modules: set[str]) -> str | None:
    """The module an exported node belongs to: ``/layer1/layer1.0/conv1/Conv`` -> ``layer1.0.conv1``.

    The TorchScript exporter names scopes either by attribute (``conv1``) or by dotted path
    (``layer1.0``, ``shortcut.0``), and a module's second and later calls with a suffix (a detector head
    run on five pyramid levels: ``cls_logits``, ``cls_logits_1`` ... ``cls_logits_4``); each segment is
    resolved against the real module names, as written first, then without such a suffix.
    """
    current = ""
    for segment in node_name.strip("/").split("/")[:-1]:
        parent = current.rpartition(".")[0]
        resolved = None
        for name in dict.fromkeys((segment, re.sub(r"_\d+$", "", segment))):
            for candidate in (f"{current}.{name}" if current else name, name, f"{parent}.{name}"):
                if candidate in modules:
                    resolved = candidate
                    break
            if resolved is not None:
                break
        if resolved is None:
            return None
        current = resolved
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


def excluded_nodes(model: nn.Module, onnx_path: Path, keep: FilterFn) -> list[str]:
    """Names of the exported graph's quantizable nodes whose module ``keep`` leaves float (ONNX Runtime's
    ``nodes_to_exclude``; OpenVINO's ignored scope is read from them too)."""
    import onnx

    modules = dict(model.named_modules())
    names = set(modules)
    excluded = []
    for node in onnx.load(str(onnx_path), load_external_data=False).graph.node:
        if node.op_type in QUANTIZED_OPS:
            name = node_module(node.name, names)
            if name is not None and not keep(modules[name], name):
                excluded.append(node.name)
    return excluded


def _export_and_quantize(
    model: nn.Module,
    example_inputs: Any,
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
    float_path, prepared = float_path.resolve(), prepared.resolve()
    # where its symbolic shape inference gives up it saves the half-done graph ("sym_shape_infer_temp.onnx"
    # and a uuid ".data" file) into the working directory: run it in a scratch folder that is removed after
    with (
        tempfile.TemporaryDirectory(prefix="netsculpt-ort-") as scratch,
        contextlib.chdir(scratch),
        contextlib.redirect_stdout(quiet),
        contextlib.redirect_stderr(quiet),
    ):
        try:
            quant_pre_process(str(float_path), str(prepared))
        except Exception:
            # its symbolic shape inference cannot follow some graphs (nn.MultiheadAttention's reshapes);
            # ONNX's own shape inference and the graph optimisation still run without it
            quant_pre_process(str(float_path), str(prepared), skip_symbolic_shape=True)
    excluded = excluded_nodes(model, float_path, config.filter_fn or default_filter)
    overrides = _int4_overrides(model, prepared, config.int4_layers, excluded)
    from netsculpt.measure._inputs import as_tuple

    example = as_tuple(example_inputs)
    names = [f"input{i}" for i in range(len(example))]  # export_onnx's names, in forward's order
    reader = _Reader(calibration_data, names, example, config.calibration_batches)
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
    example_inputs: Any,
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
    tree = check_int8_io(model, example_inputs, "onnxruntime")
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
        write_outputs(out, tree)  # before the graph: a folder with the graph always has its structure
        os.replace(partial, int8_path)
        done = True
    finally:  # a failed call leaves no file of its own behind: no temporaries, no lone float export
        prepared.unlink(missing_ok=True)
        partial.unlink(missing_ok=True)
        if not done:
            float_path.unlink(missing_ok=True)
    return OnnxModule(int8_path, None if tree.is_tensor else tree)
