"""int4 vs int8 per layer under a byte budget: HAQ's walk over integer weight widths.

The budget is on the *packed quantized weight bytes* of the searched conv / linear layers, i.e. what the
ONNX int8 export (:func:`netsculpt.weights.quantize.quantize_int8`) stores for them: per layer
``ceil(n * bits / 8)`` weight bytes plus one fp32 scale and one zero point (``bits`` wide, packed) per
output channel. Biases, activations' scales and the graph are not in it (they do not depend on the
choice), so the ``.onnx`` file is larger than the budget: :func:`export_int_bits` measures it and
reports it beside the prediction. Candidates are scored on held-out batches by fake-quantizing each
weight symmetrically per output channel in torch (``[-(2**(b-1) - 1), 2**(b-1) - 1]``, scale
``max|w| / qmax``), swapped in like the palettes of :class:`~netsculpt.weights.bit_space.BitSpace`, so
:func:`netsculpt.weights.haq.search_bits` (agent, GA, NSGA-II) walks this space unchanged.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from netsculpt.checks import materialised
from netsculpt.errors import ConfigError
from netsculpt.weights.bit_space import BitEvalTask, _swap_evaluate
from netsculpt.weights.config import FilterFn, default_filter
from netsculpt.weights.layer_space import LayerSpace
from netsculpt.weights.quantize import QUANTIZED_OPS, Int8Config, OnnxModule, node_module, quantize_int8

INT_BITS = (4, 8)
SCALE_BYTES = 4  # ONNX Runtime stores one fp32 scale per output channel


@dataclass
class IntLayer:
    name: str
    module: nn.Module
    shape: tuple[int, ...]
    bits: list[int]  # allowed widths, ascending: [4, 8]

    def nbytes(self, bits: int) -> int:
        """Packed weight bytes plus per-output-channel scales and zero points of this layer at ``bits``."""
        channels = self.shape[0]
        return (
            math.ceil(int(np.prod(self.shape)) * bits / 8)
            + channels * SCALE_BYTES
            + math.ceil(channels * bits / 8)
        )


def fake_quantize(weight: Tensor, bits: int) -> Tensor:
    """Symmetric per-output-channel integer rounding of ``weight`` (dequantized back to float)."""
    qmax = 2 ** (bits - 1) - 1
    flat = weight.detach().reshape(weight.shape[0], -1)
    scale = flat.abs().amax(dim=1, keepdim=True) / qmax
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return (torch.clamp(torch.round(flat / scale), -qmax, qmax) * scale).reshape(weight.shape)


class IntSpace(LayerSpace[IntLayer]):
    """The conv / linear layers ``filter_fn`` keeps (the int8 export's default), each int4 or int8."""

    slack = 0  # the prediction is exact: no file header in the budgeted bytes

    def __init__(self, model: nn.Module, filter_fn: FilterFn | None = None) -> None:
        materialised(model, "search bit widths for")
        keep = filter_fn or default_filter
        layers = [
            IntLayer(name, module, tuple(module.weight.shape), list(INT_BITS))
            for name, module in model.named_modules()
            if name and isinstance(getattr(module, "weight", None), Tensor) and keep(module, name)
        ]
        super().__init__(model, layers)

    def nbytes(self, bits: Iterable[int]) -> int:
        """Predicted packed weight bytes (weights + scales + zero points) of the searched layers."""
        return sum(layer.nbytes(int(b)) for layer, b in zip(self.layers, bits))

    def _weights(self) -> dict[tuple[int, int], Tensor]:
        return {
            (i, b): fake_quantize(self._original[layer.name], b)
            for i, layer in enumerate(self.layers)
            for b in layer.bits
        }

    def evaluate(self, bits: Iterable[int], batches: list[tuple[Tensor, Tensor]]) -> tuple[float, float]:
        """(accuracy, loss) with these widths fake-quantized in; the float weights are put back after."""
        return _swap_evaluate(self.model, self.names, self._original, self._weights(), bits, batches)

    def task(self, batches: list[tuple[Tensor, Tensor]]) -> BitEvalTask:
        """What an executor's workers need to score width vectors (the fake-quantized weights)."""
        return BitEvalTask(self.model, self.names, self._weights(), batches)


def int4_layers(bits: dict[str, int]) -> tuple[str, ...]:
    """The layers a search result puts in int4 (the rest stay int8)."""
    wrong = {n: b for n, b in bits.items() if b not in INT_BITS}
    if wrong:
        raise ConfigError(f"integer widths must be 4 or 8, got {wrong}")
    return tuple(n for n, b in bits.items() if b == 4)


def export_int_bits(
    model: nn.Module,
    bits: dict[str, int],
    example_inputs: Tensor,
    calibration_data: Iterable[Any],
    out_dir: str | os.PathLike[str],
    config: Int8Config | None = None,
) -> OnnxModule:
    """The int8 ONNX export with the int4 layers of ``bits`` (``model.int8.onnx`` in ``out_dir``)."""
    base = config or Int8Config()
    chosen = Int8Config(
        calibration_batches=base.calibration_batches,
        method=base.method,
        per_channel=True,
        quant_format="qdq",
        op_types=base.op_types,
        filter_fn=base.filter_fn,
        int4_layers=int4_layers(bits),
    )
    return quantize_int8(model, example_inputs, calibration_data, out_dir, chosen)


def onnx_weight_bytes(path: str | os.PathLike[str], model: nn.Module) -> dict[str, int]:
    """Packed bytes an ONNX file holds per quantized layer: weight, scale and zero point of the
    DequantizeLinear feeding its Conv / Gemm / MatMul (element count x element width, int4 two a byte;
    large tensors are stored exactly so, tiny ones ONNX may keep unpacked in its varint fields)."""
    import onnx
    from onnx import TensorProto

    width = {TensorProto.INT4: 4, TensorProto.UINT4: 4, TensorProto.INT8: 8, TensorProto.UINT8: 8}
    width[TensorProto.FLOAT] = 32
    graph = onnx.load(str(path)).graph
    tensors = {i.name: i for i in graph.initializer}
    dequant = {n.output[0]: n for n in graph.node if n.op_type == "DequantizeLinear"}
    modules = {name for name, _ in model.named_modules() if name}
    out: dict[str, int] = {}
    for node in graph.node:
        layer = node_module(node.name, modules)
        if node.op_type not in QUANTIZED_OPS or layer is None or node.input[1] not in dequant:
            continue
        parts = [tensors[t] for t in dequant[node.input[1]].input if t in tensors]
        out[layer] = sum(math.ceil(int(np.prod(t.dims)) * width[t.data_type] / 8) for t in parts)
    return out
