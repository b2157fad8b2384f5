"""int8 post-training static quantization on OpenVINO (NNCF) and PyTorch (PT2E, x86 inductor quantizer).

Beside ONNX Runtime's path (:mod:`netsculpt.weights.quantize`), on the same calibration batches:

- **OpenVINO via NNCF**: the float ONNX export is read by OpenVINO and ``nncf.quantize`` inserts
  calibrated fake-quantize nodes (the performance preset: symmetric int8 weights per channel, int8
  activations); OpenVINO's CPU plugin runs them as int8 kernels. Written as ``model.int8.xml`` + ``.bin``.
- **PyTorch PT2E**: ``torch.export`` -> ``prepare_pt2e`` with torchao's ``X86InductorQuantizer`` ->
  calibration -> ``convert_pt2e``, saved as ``model.int8.pt2`` with ``torch.export.save``. The program
  runs int8 (oneDNN) kernels only under ``torch.compile`` with weight freezing: eager runs it as
  quantize/dequantize around float ops. torch 2.14 no longer ships ``torch.ao``'s PT2E: it is torchao's.

Every artefact is written under a temporary name and renamed into place once complete.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from netsculpt.errors import ConfigError, DataError
from netsculpt.graph.snapshot import left_as_found
from netsculpt.measure import export_onnx
from netsculpt.measure._inputs import as_tuple
from netsculpt.modes import eval_mode
from netsculpt.runtimes.artefacts import (
    OPENVINO_NAME,
    PROGRAM_NAME,
    OpenVinoModule,
    ProgramModule,
    save_program,
)
from netsculpt.runtimes.base import INSTALL_OPENVINO
from netsculpt.runtimes.output_tree import write_outputs
from netsculpt.weights.config import FilterFn
from netsculpt.weights.quantize import calibration_input, check_float32, check_int8_io, model_inputs

INSTALL_TORCHAO = "pip install torchao==0.18.0"
OV_WEIGHTED = ("Convolution", "GroupConvolution", "MatMul")  # what NNCF gives int8 weights


def calibration_batches(data: Iterable[Any], batches: int) -> list[Any]:
    """The first ``batches`` input batches of a loader (``(x, y)`` pairs or bare tensors), floats as
    float32 and integer inputs (token ids) as they are: every int8 path calibrates on exactly these.
    A model with several inputs takes ``((x0, x1, ...), y)`` batches; their items are those tuples."""
    out: list[Any] = []
    for batch in itertools.islice(data, batches):
        x = batch[0] if isinstance(batch, list | tuple) else batch
        out.append(tuple(map(calibration_input, x)) if isinstance(x, list | tuple) else calibration_input(x))
    if not out:
        raise DataError("the calibration data yielded no batch; pass a loader with at least one batch")
    return out


def quantize_openvino(
    model: nn.Module,
    example_inputs: Any,
    calibration: list[Any],
    out_dir: str | os.PathLike[str],
    keep: FilterFn | None = None,
) -> OpenVinoModule:
    """NNCF post-training int8 of ``model`` for OpenVINO: ``model.int8.xml`` and ``.bin`` in ``out_dir``.

    ``keep(module, name)`` False leaves that conv / linear float (NNCF's ignored scope), as
    ``Int8Config.filter_fn`` does on ONNX Runtime."""
    try:
        import nncf
        import openvino as ov
    except ImportError:
        raise ConfigError(f"int8 on OpenVINO needs openvino and nncf: {INSTALL_OPENVINO}") from None
    check_float32(model)
    tree = check_int8_io(model, example_inputs, "openvino")
    example = as_tuple(example_inputs)
    batches = [[x.numpy() for x in model_inputs(batch, example)] for batch in calibration]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    float_path = out / "model.fp32.ov.onnx"
    try:  # the float export is a temporary: gone whether NNCF succeeds or not
        export_onnx(model, example_inputs, float_path)
        ov_model = ov.Core().read_model(str(float_path))
        ignored = openvino_ignored(model, float_path, ov_model, keep) if keep is not None else []
        # NNCF counts dataset items, here batches: a sample count asked for more items than there are
        dataset = nncf.Dataset(batches)  # each item: the graph's inputs, in order
        quantized = nncf.quantize(
            ov_model,
            dataset,
            preset=nncf.QuantizationPreset.PERFORMANCE,
            subset_size=len(batches),
            ignored_scope=nncf.IgnoredScope(names=ignored) if ignored else None,
        )
    finally:
        float_path.unlink(missing_ok=True)
    partial = out / ".partial.model.int8.xml"
    ov.save_model(quantized, str(partial), compress_to_fp16=False)
    os.replace(partial.with_suffix(".bin"), out / "model.int8.bin")  # the weights first, then their graph
    xml = partial.read_text().replace(".partial.model.int8.bin", "model.int8.bin")
    partial.write_text(xml)
    write_outputs(out, tree)  # before the graph: a folder with the graph always has its structure
    os.replace(partial, out / OPENVINO_NAME)
    return OpenVinoModule(out / OPENVINO_NAME, None if tree.is_tensor else tree)


def openvino_ignored(model: nn.Module, onnx_path: Path, ov_model: Any, keep: FilterFn) -> list[str]:
    """The OpenVINO ops of the conv / linear nodes ``keep`` leaves float: OpenVINO names an op after the
    ONNX node it came from (``/head/.../cls_logits_1/Conv`` -> ``.../Conv/WithoutBiases``, the bias a
    separate Add), so each excluded ONNX node must match at least one op, or the filter is refused."""
    from netsculpt.weights.quantize import excluded_nodes

    excluded = excluded_nodes(model, onnx_path, keep)
    ops = [op.get_friendly_name() for op in ov_model.get_ops() if op.get_type_name() in OV_WEIGHTED]
    names = []
    for node in excluded:
        found = [op for op in ops if op == node or op.startswith(f"{node}/")]
        if not found:
            raise ConfigError(
                f"cannot keep {node!r} float on OpenVINO: no op of the read model comes from it"
            )
        names += found
    return names


def split_repeated_calls(graph: torch.fx.GraphModule) -> int:
    """Give each call of a module that ``forward`` calls twice its own name in the node metadata.

    The quantizer groups nodes into patterns by module name, so torchvision's ResNet blocks, which call
    one ``self.relu`` twice, make a two-output "partition" and torchao 0.18 raises "Input partition has
    more than one output node". A new call starts at a node that consumes no node of the same module's
    current call; returns how many calls were renamed.
    """
    current: dict[str, tuple[int, set[torch.fx.Node]]] = {}
    renamed = 0
    for node in graph.graph.nodes:
        stack = node.meta.get("nn_module_stack")
        if node.op != "call_function" or not stack:
            continue
        key = list(stack)[-1]
        fqn, cls = stack[key]
        base = fqn.split("#")[0]
        count, members = current.get(base, (0, set()))
        if members and not any(arg in members for arg in node.all_input_nodes):
            count, members = count + 1, set()
        members.add(node)
        current[base] = (count, members)
        if count:
            stack[key] = (f"{base}#{count}", cls)
            source = node.meta.get("source_fn_stack")
            if source:
                node.meta["source_fn_stack"] = [*source[:-1], (f"{source[-1][0]}#{count}", source[-1][1])]
            renamed += 1
    return renamed


def drop_unused_weights(graph: torch.fx.GraphModule) -> int:
    """Delete the parameters and buffers no node of ``graph`` reads; returns how many went.

    ``convert_pt2e`` folds each weight's quantization into an int8 constant but leaves the float weight
    on the module, unread; ``torch.export`` saves every parameter, so the ``.pt2`` carried the float
    model beside the int8 one (ResNet-50 pruned to 0.5x MACs: 75.7 MiB against ONNX's 15.1 MiB)."""
    read = {str(node.target) for node in graph.graph.nodes if node.op == "get_attr"}
    dropped = 0
    for name, _ in [*graph.named_parameters(), *graph.named_buffers()]:
        if name in read:
            continue
        owner_name, _, leaf = name.rpartition(".")
        owner = graph.get_submodule(owner_name) if owner_name else graph
        delattr(owner, leaf)
        dropped += 1
    return dropped


def quantize_pt2e(
    model: nn.Module,
    example_inputs: Any,
    calibration: list[Any],
    out_dir: str | os.PathLike[str],
) -> ProgramModule:
    """PT2E int8 of ``model`` with the x86 inductor quantizer; writes ``model.int8.pt2`` in ``out_dir``."""
    try:
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
        from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as xiq
    except ImportError:
        raise ConfigError(f"int8 through PT2E needs torchao: {INSTALL_TORCHAO}") from None
    check_float32(model)
    check_int8_io(model, example_inputs, "torch")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # batch 2 keeps dim 0 symbolic (export specialises size-1 dims); AUTO lets a fixed-batch model be
    example = as_tuple(example_inputs)
    x = tuple(t[:1].expand(2, *t.shape[1:]).contiguous() if t.dim() else t for t in example)
    batch = torch.export.Dim.AUTO
    dynamic = tuple({0: batch} if t.dim() else None for t in example)
    with left_as_found(model, "while it was exported"), eval_mode(model), torch.no_grad():
        graph = torch.export.export(model, x, dynamic_shapes=dynamic).module()
        split_repeated_calls(graph)
        quantizer = xiq.X86InductorQuantizer()
        quantizer.set_global(xiq.get_default_x86_inductor_quantization_config())
        prepared = prepare_pt2e(graph, quantizer)
        for inputs in calibration:
            prepared(*model_inputs(inputs, example))
        converted = convert_pt2e(prepared)
        drop_unused_weights(converted)
        program = torch.export.export(converted, x, dynamic_shapes=dynamic)
    save_program(program, out / PROGRAM_NAME)
    return ProgramModule(out / PROGRAM_NAME)
