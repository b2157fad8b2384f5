"""The layers a latency table is keyed by: leaf-module calls of one forward pass, grouped into units.

A unit is a conv or linear layer plus the BatchNorm and activation modules that consume exactly its
output — what ONNX Runtime runs as one fused kernel. ``describe_layer`` gives a layer's table key at
given input/output shapes and a builder for an equivalent fresh layer to time.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from netsculpt.measure._inputs import ExampleInputs, as_tuple, check_module
from netsculpt.modes import module_modes, restore_modes, set_training

_HEADS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
_HF_CONV1D = "transformers.pytorch_utils.Conv1D"  # GPT-2's Linear with a transposed weight: same GEMM
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_ACTIVATIONS = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.Hardswish, nn.Hardsigmoid, nn.SiLU, nn.GELU, nn.Sigmoid, nn.Tanh,
)  # fmt: skip


@dataclass(frozen=True)
class LayerCall:
    """One call of a leaf module, in execution order (a module called twice appears twice)."""

    name: str
    index: int  # which call of this module
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    in_dtype: torch.dtype = torch.float32  # token ids into an nn.Embedding are timed as ids


def _joins(unit: list[nn.Module], module: nn.Module) -> bool:
    """Does ``module`` fuse into ``unit`` (head, then at most one BN, then at most one activation)?"""
    if type(unit[0]) not in _HEADS or type(unit[-1]) in _ACTIVATIONS:
        return False
    return type(module) in _ACTIVATIONS or (type(module) in _NORMS and len(unit) == 1)


def record_calls(model: nn.Module, example_inputs: ExampleInputs) -> tuple[list[LayerCall], list[list[int]]]:
    """Leaf-module calls of one forward pass, and how they form units (lists of call positions).

    A call joins the previous unit when it consumes exactly the tensor that unit produced last.
    """
    check_module(model, "time the layers of", "time them")
    inputs = as_tuple(example_inputs)
    names = {id(m): n for n, m in model.named_modules()}
    calls: list[LayerCall] = []
    units: list[list[int]] = []
    unit_modules: list[list[nn.Module]] = []
    seen: dict[str, int] = {}
    last_out = [-1]

    def hook(module: nn.Module, args: tuple, output: Any) -> None:
        x = next((a for a in args if isinstance(a, torch.Tensor)), None)
        if isinstance(module, nn.RNNBase) and isinstance(output, tuple):
            output = output[0]  # (output, state): timed as one layer, not left out as fixed cost
        if x is None or not isinstance(output, torch.Tensor):
            return
        name = names[id(module)]
        calls.append(LayerCall(name, seen.get(name, 0), tuple(x.shape), tuple(output.shape), x.dtype))
        seen[name] = seen.get(name, 0) + 1
        if units and last_out[0] == id(x) and _joins(unit_modules[-1], module):
            units[-1].append(len(calls) - 1)
            unit_modules[-1].append(module)
        else:
            units.append([len(calls) - 1])
            unit_modules.append([module])
        last_out[0] = id(output)

    handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    modes = module_modes(model)
    set_training(model, False)
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        restore_modes(modes)
        for h in handles:
            h.remove()
    return calls, units


def shape_text(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def describe_layer(
    module: nn.Module, in_shape: tuple[int, ...], out_shape: tuple[int, ...]
) -> tuple[str, Callable[[], nn.Module] | None]:
    """A table key for ``module`` at these shapes, and how to build an equivalent fresh layer to time.

    Returns ``None`` as builder for a layer with parameters whose shape it cannot rebuild (its latency is
    then scaled from the original's by activation size).
    """
    kind = type(module)
    if kind in (nn.Conv1d, nn.Conv2d, nn.Conv3d):
        cin, cout, groups = in_shape[1], out_shape[1], module.groups
        if groups > 1 and groups == module.in_channels == module.out_channels:
            groups = cin  # depthwise stays depthwise
        bias = module.bias is not None
        key = (
            f"{kind.__name__}({cin},{cout},k={module.kernel_size},s={module.stride},p={module.padding},"
            f"d={module.dilation},g={groups},bias={bias},{module.padding_mode})"
        )
        args = (cin, cout, module.kernel_size, module.stride, module.padding, module.dilation, groups, bias)
        return key, lambda: kind(*args, padding_mode=module.padding_mode)
    if kind is nn.Linear or f"{kind.__module__}.{kind.__qualname__}" == _HF_CONV1D:
        cin, cout, bias = in_shape[-1], out_shape[-1], module.bias is not None
        return f"Linear({cin},{cout},bias={bias})", lambda: nn.Linear(cin, cout, bias=bias)
    if kind in _NORMS:
        channels = in_shape[1]
        return f"{kind.__name__}({channels})", lambda: kind(channels)
    if not any(True for _ in module.parameters()) and not any(True for _ in module.buffers()):
        return f"{kind.__name__}({module.extra_repr()})", lambda: copy.deepcopy(module)
    return f"{kind.__name__}({module.extra_repr()})", None
