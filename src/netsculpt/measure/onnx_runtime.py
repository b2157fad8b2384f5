"""ONNX export and ONNX Runtime inference, to time and check a model outside PyTorch.

Export uses the TorchScript exporter (``dynamo=False``) first: on torch 2.14 it exports a ResNet in
about a second, while the ``torch.export``-based exporter takes several and fails on more models
(data-dependent control flow). The dynamo exporter is the fallback when the TorchScript one fails.
Dim 0 of every input and output is exported as a symbolic batch size, so one file serves every batch;
structured inputs (nested lists/dicts, e.g. a detector's list of images) are exported at the example's
shapes, their tensor leaves in order becoming ``input0``, ``input1``, ...
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils._pytree import tree_flatten

from netsculpt.errors import CheckpointError, ConfigError, TraceError
from netsculpt.graph.snapshot import left_as_found
from netsculpt.measure._inputs import (
    ExampleInputs,
    as_tuple,
    check_module,
    describe,
    is_flat,
    run_forward,
    tensor_leaves,
)
from netsculpt.measure.latency import check_counts, median_ms
from netsculpt.modes import eval_mode
from netsculpt.parallel import unwrap_parallel

# Opsets each exporter writes natively (the dynamo one converts anything below 18, noisily).
OPSET = {False: 17, True: 18}


def _tensor_count(output: object) -> int:
    """ONNX outputs are the flattened tensors of whatever structure forward returns."""
    return sum(isinstance(leaf, torch.Tensor) for leaf in tree_flatten(output)[0])


def _first_line(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text).splitlines()[0] if text else ""


def _export(model: nn.Module, inputs: tuple[Any, ...], path: Path, *, outputs: int, dynamo: bool) -> None:
    """Flat tensor inputs get a symbolic batch dim; structured ones (a detector's list of images, whose
    batch is the list's length) are exported at the example's shapes."""
    input_names = [f"input{i}" for i in range(len(tensor_leaves(inputs)))]
    kwargs: dict[str, Any]
    if not is_flat(inputs):
        kwargs = {} if dynamo else {"output_names": [f"output{i}" for i in range(outputs)]}
    elif dynamo:
        batched = [i for i, x in enumerate(inputs) if x.dim() > 0]
        batch = torch.export.Dim("batch", min=1, max=65536)
        kwargs = {"dynamic_shapes": tuple({0: batch} if i in batched else None for i in range(len(inputs)))}
    else:
        batched = [i for i, x in enumerate(inputs) if x.dim() > 0]
        output_names = [f"output{i}" for i in range(outputs)]
        axes = {input_names[i]: {0: "batch"} for i in batched} | {name: {0: "batch"} for name in output_names}
        kwargs = {"output_names": output_names, "dynamic_axes": axes}
    quiet = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice, tracer warnings
        torch.onnx.export(
            model,
            # the TorchScript exporter reads a trailing dict as keyword arguments; an empty one after it
            # keeps a dict that is forward's last positional argument positional
            (*inputs, {}) if not dynamo and isinstance(inputs[-1], dict) else inputs,
            str(path),
            dynamo=dynamo,
            input_names=input_names,
            opset_version=OPSET[dynamo],
            **kwargs,
        )


def export_onnx(model: nn.Module, example_inputs: ExampleInputs, path: str | os.PathLike[str]) -> Path:
    """Export ``model`` (in eval mode) to ``path`` and validate the file with ``onnx.checker``; whatever the
    exporter's forward calls write into the model (a cached scale, anchors) is put back afterwards."""
    import onnx

    model = unwrap_parallel(check_module(model, "export"), "export_onnx")  # exporters refuse a DataParallel
    inputs = as_tuple(example_inputs)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    with left_as_found(model, "while it was exported"), eval_mode(model):  # exporters run its forward
        with torch.no_grad():  # a model that cannot run says so, rather than "cannot export"
            outputs = _tensor_count(run_forward(model, inputs))
        for dynamo in (False, True):
            try:
                _export(model, inputs, path, outputs=outputs, dynamo=dynamo)
                break
            except Exception as exc:  # exporters raise many types; both are tried before giving up
                errors.append(
                    f"{'dynamo' if dynamo else 'TorchScript'} exporter: {type(exc).__name__}: {exc}"
                )
        else:
            raise TraceError(
                f"cannot export {type(model).__name__} to ONNX with inputs [{describe(inputs)}]:\n  "
                + "\n  ".join(_first_line(error) for error in errors)
                + "\nMeasure without ONNX (onnx=False), or make the failing operation exportable."
            )
    try:
        onnx.checker.check_model(str(path))
    except onnx.checker.ValidationError as exc:
        raise TraceError(f"the ONNX file exported from {type(model).__name__} is invalid: {exc}") from exc
    return path


def _session(path_or_session: Any) -> Any:
    import onnxruntime as ort

    if isinstance(path_or_session, ort.InferenceSession):
        return path_or_session
    path = Path(path_or_session)
    if not path.is_file():
        raise ConfigError(
            f"ONNX file {str(path)!r} does not exist; create it with export_onnx(model, inputs, path)"
        )
    options = ort.SessionOptions()
    # Same thread budget as torch, so the two runtimes are compared on equal terms.
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ONNX Runtime raises its own Fail / InvalidProtobuf / InvalidGraph types
        first = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        raise CheckpointError(f"ONNX Runtime cannot load {str(path)!r}: {first}") from None


def _feeds(session: Any, inputs: tuple[Any, ...]) -> dict[str, np.ndarray]:
    """The example's leaves, in order, fed to the session's inputs (see :func:`feed_leaves`)."""
    names = [i.name for i in session.get_inputs()]
    return dict(zip(names, feed_leaves(inputs, names, "ONNX")))


def feed_leaves(inputs: tuple[Any, ...], names: list[str], what: str) -> list[np.ndarray]:
    """The example's leaves, in order, as arrays for an exported graph's ``names`` inputs.

    Both exporters make every tensor leaf an input; the TorchScript one also makes number leaves
    (an ``int`` option) inputs, while the dynamo one bakes them in. Strings and None are never inputs.
    ONNX Runtime and OpenVINO run the same export, so both feed it by this one rule.
    """
    leaves = tree_flatten(inputs)[0]
    tensors = [x for x in leaves if isinstance(x, torch.Tensor)]
    with_numbers = [x for x in leaves if isinstance(x, torch.Tensor | bool | int | float)]
    for fed in (tensors, with_numbers):
        if len(fed) == len(names):
            return [_array(x) for x in fed]
    raise ConfigError(f"the {what} model takes {len(names)} inputs ({', '.join(names)}), got {len(tensors)}")


def _array(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def run_onnx(path: Any, example_inputs: ExampleInputs) -> list[np.ndarray]:
    """Outputs of the ONNX model (a path or an ``InferenceSession``) on ``example_inputs``."""
    session = _session(path)
    return list(session.run(None, _feeds(session, as_tuple(example_inputs))))


def onnx_latency(
    path_or_session: Any, example_inputs: ExampleInputs, runs: int = 30, warmup: int = 5
) -> float:
    """Median milliseconds per ONNX Runtime call (CPUExecutionProvider) on ``example_inputs``."""
    check_counts(runs, warmup)
    session = _session(path_or_session)
    feeds = _feeds(session, as_tuple(example_inputs))
    return median_ms(lambda: session.run(None, feeds), runs, warmup)
