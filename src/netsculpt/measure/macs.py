"""Parameter and multiply-accumulate (MAC) counts, with a per-layer breakdown.

MACs are counted at the aten level with a ``TorchDispatchMode``, so a ``torch.matmul`` or
``F.scaled_dot_product_attention`` written inside a custom ``forward`` is seen just like a ``nn.Conv2d``.
The per-op formulas are torch's own ``torch.utils.flop_counter`` ones (FLOPs = 2 x MACs), plus the CPU
attention kernel that torch's table lacks. See docs/measure.md for the convention.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import flop_registry

from netsculpt.measure._inputs import ExampleInputs, as_tuple, check_module, run_forward
from netsculpt.modes import eval_mode

aten = torch.ops.aten


@dataclass
class LayerMetrics:
    """One module's share of the model: its own parameters and the MACs run while it was innermost."""

    name: str
    type: str
    params: int
    macs: int
    output_shape: tuple[int, ...] | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "params": self.params,
            "macs": self.macs,
            "output_shape": list(self.output_shape) if self.output_shape is not None else None,
        }


def count_params(model: nn.Module) -> int:
    """Number of parameter elements; a parameter shared by several modules is counted once."""
    check_module(model)
    return sum(p.numel() for p in model.parameters())


def _sdpa_macs(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> int:
    """QK^T plus AV: ``batch x heads x L x S x (E + Ev)``; key/value heads may be fewer (GQA)."""
    *batch, length, e_qk = query.shape
    source = key.shape[-2]
    return math.prod(batch) * length * source * (e_qk + value.shape[-1])


def _flops_to_macs(formula: Callable[..., int]) -> Callable[..., int]:
    def macs(*args: Any, out: Any = None, **kwargs: Any) -> int:
        return int(formula(*args, **kwargs, out_val=out)) // 2

    return macs


def _formulas() -> dict[Any, Callable[..., int]]:
    """torch's FLOP formulas turned into MACs, plus attention kernels torch does not list.

    Torch 2.14 has no entry for ``_scaled_dot_product_flash_attention_for_cpu``, the kernel every
    ``F.scaled_dot_product_attention`` call takes on CPU, so attention would silently count as zero.
    """
    table: dict[Any, Callable[..., int]] = {op: _flops_to_macs(f) for op, f in flop_registry.items()}
    cpu_attention = getattr(aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if cpu_attention is not None:
        table[cpu_attention] = lambda q, k, v, *args, out=None, **kwargs: _sdpa_macs(q, k, v)
    return table


_FORMULAS = _formulas()


class _MacCounter(TorchDispatchMode):
    """Adds each counted op's MACs to the module that is innermost on the call stack."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = [""]
        self.macs: dict[str, int] = {}

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        formula = _FORMULAS.get(func.overloadpacket)
        if formula is None:
            # A fused op without a formula may still decompose into counted ones (as FlopCounterMode does).
            with self:
                decomposed = func.decompose(*args, **kwargs)
            if decomposed is not NotImplemented:
                return decomposed
            return func(*args, **kwargs)
        out = func(*args, **kwargs)
        name = self.stack[-1]
        self.macs[name] = self.macs.get(name, 0) + formula(*args, out=out, **kwargs)
        return out


def _first_shape(output: object) -> tuple[int, ...] | None:
    leaves, _ = tree_flatten(output)
    for leaf in leaves:
        if isinstance(leaf, torch.Tensor):
            return tuple(leaf.shape)
    return None


@contextmanager
def _no_mha_fastpath() -> Iterator[None]:
    """Make ``nn.MultiheadAttention`` run its composite path while counting.

    In eval mode without autograd, MHA and ``TransformerEncoderLayer`` call one fused kernel
    (``_native_multi_head_attention``) that no FLOP table covers, so their MACs would count as zero.
    The composite path runs the same projections and attention as separate, countable ops.
    """
    backend = getattr(torch.backends, "mha", None)
    if backend is None:
        yield
        return
    was = backend.get_fastpath_enabled()
    backend.set_fastpath_enabled(False)
    try:
        yield
    finally:
        backend.set_fastpath_enabled(was)


def count_macs(model: nn.Module, example_inputs: ExampleInputs) -> tuple[int, list[LayerMetrics]]:
    """Total MACs of one eval-mode forward and a per-layer breakdown, in execution order.

    Layers are the leaf modules, plus any other module that owns parameters directly or runs counted
    ops itself (e.g. an attention block calling ``torch.matmul``); MACs go to the innermost module
    running. Modules the forward never called are listed last with ``output_shape=None``, so the
    layers' params always add up to :func:`count_params`. MACs outside every submodule are kept under
    the root's name ``""``.
    """
    check_module(model)
    inputs = as_tuple(example_inputs)
    names = {module: name for name, module in model.named_modules()}
    counter = _MacCounter()
    order: list[str] = []
    shapes: dict[str, tuple[int, ...] | None] = {}

    def pre_hook(module: nn.Module, _args: Any) -> None:
        name = names[module]
        counter.stack.append(name)
        if name not in shapes:
            order.append(name)
            shapes[name] = None

    def post_hook(module: nn.Module, _args: Any, output: Any) -> None:
        name = counter.stack.pop()
        shapes[name] = _first_shape(output)

    handles = []
    for module in names:
        if module is not model:
            handles.append(module.register_forward_pre_hook(pre_hook))
            handles.append(module.register_forward_hook(post_hook, always_call=True))
    try:
        with eval_mode(model), torch.no_grad(), _no_mha_fastpath(), counter:
            shapes[""] = _first_shape(run_forward(model, inputs))
    finally:
        for handle in handles:
            handle.remove()

    return sum(counter.macs.values()), _layers(model, order, shapes, counter.macs)


def _layers(
    model: nn.Module, order: list[str], shapes: dict[str, tuple[int, ...] | None], macs: dict[str, int]
) -> list[LayerMetrics]:
    modules = dict(model.named_modules())
    seen_params: set[int] = set()

    def own_params(module: nn.Module) -> int:
        total = 0
        for p in module.parameters(recurse=False):
            if id(p) not in seen_params:
                seen_params.add(id(p))
                total += p.numel()
        return total

    layers: list[LayerMetrics] = []
    if macs.get("", 0) or any(True for _ in model.parameters(recurse=False)):
        layers.append(LayerMetrics("", type(model).__name__, own_params(model), macs.get("", 0), shapes[""]))
    listed = {""}
    for name in [*order, *modules]:
        if name in listed or name not in modules:
            continue
        module = modules[name]
        is_leaf = next(module.children(), None) is None
        params = own_params(module)
        if is_leaf or params or macs.get(name, 0):
            listed.add(name)
            layers.append(
                LayerMetrics(name, type(module).__name__, params, macs.get(name, 0), shapes.get(name))
            )
    return layers
