"""Price the work between a network's leaf modules ("glue") by the tensors it touches.

Squeeze-excite multiplies, residual adds, concatenations and channel shuffles run outside any leaf module,
so the per-layer table never sees them. Counted as a fixed offset they make a pruned model look slower
than it is — they shrink with the channels — and a latency target then prunes too much: on ShuffleNetV2
(96x96, eager, one thread) 39-44% of the latency sat in the offset, and a 0.7 target measured 0.59. Each op
is priced as one elementwise pass over its largest tensor, timed at the op's original shape and at a
quarter of its channels and interpolated linearly in element count: two timings per distinct shape,
however many widths a search tries. Views (reshape, permute, slicing, chunk) are free.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from netsculpt.measure.latency_layers import shape_text

# Ops that return views or do nothing at inference: they move no data.
FREE_OPS = frozenset(
    {
        "view", "reshape", "flatten", "transpose", "permute", "chunk", "split", "__getitem__", "squeeze",
        "unsqueeze", "expand", "expand_as", "size", "dim", "dropout", "identity", "t", "narrow", "unbind",
        "view_as", "detach",
    }
)  # fmt: skip


class Elementwise(nn.Module):
    """What a glue op is timed as: one elementwise pass (read, write) over a tensor."""

    def forward(self, x):
        return x + x


@dataclass(frozen=True)
class GlueOp:
    """One priced op between leaf modules: its name and the traced value it is priced by."""

    name: str
    module: str
    value: int  # the largest tensor it reads or writes (a graph value id)


def op_kind(name: str) -> str:
    """``Tensor.add_`` -> ``add_``; ``F.dropout`` -> ``dropout``."""
    return name.rpartition(".")[2]


def glue_ops(graph: Any, leaf_modules: set[str]) -> list[GlueOp]:
    """The traced calls that run outside every leaf module and move data, in execution order."""
    values = graph.builder.values
    out = []
    for op in graph.builder.ops:
        if op.module in leaf_modules or op_kind(op.name) in FREE_OPS:
            continue
        ids = [v for v in [*op.inputs, *op.outputs] if values[v].param is None]
        if not ids:
            continue
        out.append(GlueOp(op.name, op.module, max(ids, key=lambda v: math.prod(values[v].shape))))
    return out


def quarter(shape: tuple[int, ...]) -> tuple[int, ...]:
    """``shape`` with a quarter of its channels (dim 1): the second point of an op's price line."""
    if len(shape) < 2 or shape[1] < 2:
        return shape
    return (shape[0], max(1, shape[1] // 4), *shape[2:])


def glue_ms(
    ops: list[GlueOp], graph: Any, keep: dict[str, list[int]], price: Callable[[tuple[int, ...]], float]
) -> float:
    """Milliseconds of the glue once ``keep`` is applied: each op's line through its two timed points."""
    removed = graph.removed_components(keep)
    total = 0.0
    for op in ops:
        base = tuple(graph.builder.values[op.value].shape)
        n_base = math.prod(base)
        if n_base == 0:
            continue
        n_new = math.prod(graph.new_shape(op.value, removed))
        t_base = price(base)
        low = quarter(base)
        n_low = math.prod(low)
        if n_new == n_base or n_low == n_base:
            total += t_base
            continue
        t_low = price(low)
        slope = (t_base - t_low) / (n_base - n_low)
        total += max(t_low + slope * (n_new - n_low), 0.0)
    return total


class GluePricing:
    """The glue part of :class:`netsculpt.measure.LatencyModel` (it provides the table, inputs, ``_time``)."""

    glue: bool
    _glue_ops: tuple[Any, list[GlueOp]]
    leaves: set[str]
    inputs: tuple[torch.Tensor, ...]
    table: dict[str, float]
    measured: int

    def _time(
        self, layers: list[nn.Module], in_shape: tuple[int, ...], dtype: torch.dtype = torch.float32
    ) -> float:
        raise NotImplementedError

    def glue_sum(self, graph: Any, keep: dict[str, list[int]]) -> float:
        """Priced ms of the ops between leaf modules of ``graph`` after ``keep`` (0 without glue)."""
        if not self.glue or graph is None:
            return 0.0
        if self._glue_ops[0] is not graph:
            self._glue_ops = (graph, glue_ops(graph, self.leaves))
        return glue_ms(self._glue_ops[1], graph, keep, self._glue_price)

    def _glue_price(self, shape: tuple[int, ...]) -> float:
        key = f"Elementwise@{shape_text(shape)}"
        if key not in self.table:
            self.table[key] = self._time([Elementwise()], shape)
            self.measured += 1
        return self.table[key]

    def _trace(self, model: nn.Module) -> Any:
        """``model``'s channel graph, for its glue ops; None (glue unpriced, in the offset) if it cannot
        be traced."""
        if not self.glue:
            return None
        import warnings

        from netsculpt.graph import trace

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return trace(model, self.inputs)
        except Exception:
            self.glue = False
            return None
