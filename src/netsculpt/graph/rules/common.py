"""Building blocks shared by the channel rules."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from netsculpt.graph.builder import ROLE_OUT, ROLE_STAT, GraphBuilder, Value
from netsculpt.graph.labels import NO_CHANNEL, along, compress, plain
from netsculpt.graph.registry import Call


@dataclass
class Operand:
    """An input of an element-wise op, right-aligned to the output's dims (numpy broadcasting)."""

    labels: np.ndarray
    zero: np.ndarray
    shape: tuple[int, ...]
    bcast: tuple[bool, ...]
    value: Value | None


def align(v: Value, ndim: int) -> Operand:
    pad = ndim - v.ndim
    labels = v.labels.reshape((1,) * pad + v.labels.shape)
    zero = np.broadcast_to(v.zero, v.labels.shape).reshape(labels.shape)
    bcast = (True,) * pad + (v.bcast or (False,) * v.ndim)
    return Operand(labels, zero, (1,) * pad + v.shape, bcast, v)


def scalar_operand(x: object, ndim: int) -> Operand:
    zero = np.full((1,) * ndim, bool(isinstance(x, int | float | bool) and x == 0))
    return Operand(plain(ndim), zero, (1,) * ndim, (True,) * ndim, None)


def label_param_operand(
    ctx: GraphBuilder, op: Operand, varying: Sequence[int], out_shape: Sequence[int], role: str = ROLE_OUT
) -> None:
    """Give an unlabelled parameter operand atoms along the first dim where the other operands vary.

    The operand's slices produce the channel's values (a masked channel's bias or position encoding is
    zeroed with it), so a buffer operand (a fixed sin-cos encoding, a frozen affine) is a producer too:
    as a statistic it would be sliced but never zeroed, and the masked reference would read it.
    A divisor (``role`` ROLE_STAT) is only sliced: zeroing it would turn the masked 0 / s into NaN.
    """
    v = op.value
    if v is None or (v.param is None and v.view_of is None) or (v.labels >= 0).any():
        return
    pad = len(op.shape) - v.ndim
    for d in varying:
        if d >= pad and op.shape[d] == out_shape[d] and op.shape[d] > 1:
            owner, dim = v, d - pad
            if v.param is None:  # a view of a parameter: the atoms belong to the parameter's own dim
                base, dims = v.view_of
                if dims[d - pad] is None:
                    return
                owner, dim = ctx.values[base], dims[d - pad]
            atoms = ctx.member(owner, dim, role, buffer_produces=True)
            # zeroed by masking only if its member produces (a tensor met first as a statistic stays one)
            zeroed = ctx.members[(owner.param, dim % owner.ndim)].role == ROLE_OUT and not v.view_shifted
            v.labels = along(atoms, d - pad, v.ndim)
            v.zero = np.full(v.labels.shape, zeroed)
            op.labels = along(atoms, d, len(op.shape))
            op.zero = np.full(op.labels.shape, zeroed)
            return


def shifted_view(ops: list[Operand], out: Value) -> None:
    """A parameter view plus terms that are copies along its mapped dims is still sliced with it.

    timm's fused Swin adds the shift-window mask, expanded over ``self.num_heads``, to the gathered bias
    table before SDPA: removing head ``k`` of the sum removes column ``k`` of the table and one copy of the
    mask. The sum is not zero when the column is masked (``view_shifted``); attention does not need it to.
    """
    views = [op for op in ops if op.value is not None and op.value.view_of is not None]
    if len(views) != 1:
        return
    view = views[0]
    base, dims = view.value.view_of
    pad = out.ndim - view.value.ndim
    mapping = tuple(
        None if d < pad or view.shape[d] != out.shape[d] else dims[d - pad] for d in range(out.ndim)
    )
    mapped = [d for d, m in enumerate(mapping) if m is not None]
    for op in ops:
        if op is not view and any(op.shape[d] > 1 and not op.bcast[d] for d in mapped):
            return  # another term varies along the parameter's dim: its values are not the parameter's
    if mapped:
        others_zero = all(bool(np.all(op.zero)) for op in ops if op is not view)
        out.view_of, out.view_shifted = (base, mapping), view.value.view_shifted or not others_zero


def merge_elementwise(
    ctx: GraphBuilder, operands: list[Operand], out_shape: Sequence[int], kind: str, where: str
) -> tuple[np.ndarray, np.ndarray]:
    """Labels and zero-status of an element-wise combination of ``operands``.

    ``kind`` says when the result is zero under masking: "sum" (all zero), "product" (any zero),
    "first" (the first operand is zero: division), "none" (never).
    """
    nd = len(out_shape)
    varying = sorted({d for op in operands for d in range(nd) if op.labels.shape[d] > 1})
    for i, op in enumerate(operands):
        divisor = kind == "first" and i > 0
        label_param_operand(ctx, op, varying, out_shape, ROLE_STAT if divisor else ROLE_OUT)
    varying = sorted({d for op in operands for d in range(nd) if op.labels.shape[d] > 1})
    k_shape = tuple(out_shape[d] if d in varying else 1 for d in range(nd))
    out = None
    zeros = []
    for op in operands:
        covers = all(op.shape[d] == out_shape[d] and not op.bcast[d] for d in varying)
        if covers:
            lab = np.broadcast_to(op.labels, k_shape)
            out = lab if out is None else ctx.couple(out, lab, f"it meets a non-channel tensor in {where}")
            zeros.append(np.broadcast_to(op.zero, k_shape))
        else:
            ctx.block(op.labels, f"one element is shared by several channels in {where}")
            zeros.append(np.broadcast_to(np.all(op.zero), k_shape))
    labels = np.full(k_shape, NO_CHANNEL, np.int64) if out is None else np.array(out)
    if kind == "sum":
        zero = np.logical_and.reduce(zeros)
    elif kind == "product":
        zero = np.logical_or.reduce(zeros)
    elif kind == "first":
        zero = zeros[0]
    else:
        zero = np.zeros(k_shape, bool)
    return labels, np.asarray(zero)


def set_output(out: Value, labels: np.ndarray, zero: np.ndarray | bool) -> None:
    """Store compressed labels/zero on an output value."""
    labels = np.asarray(labels)
    if labels.ndim != out.ndim:
        labels = labels.reshape(labels.shape[labels.ndim - out.ndim :]) if labels.ndim > out.ndim else labels
    labels = compress(labels)
    out.labels = labels
    out.zero = np.broadcast_to(np.asarray(zero), np.broadcast_shapes(np.shape(zero), labels.shape)).copy()
    if out.zero.shape != labels.shape:
        out.zero = np.all(
            out.zero, axis=tuple(d for d in range(labels.ndim) if labels.shape[d] == 1), keepdims=True
        )
        out.zero = np.broadcast_to(out.zero, labels.shape).copy()


def channel_atoms(ctx: GraphBuilder, v: Value, dim: int, where: str) -> np.ndarray:
    """The 1-D channel atoms of ``v`` along ``dim``; channels that also vary elsewhere are blocked."""
    dim = dim % v.ndim
    lab = v.labels
    others = [d for d in range(v.ndim) if d != dim and lab.shape[d] > 1]
    if others:
        ctx.block(lab, f"its elements spread over several dimensions before {where}")
        return np.full(v.shape[dim], NO_CHANNEL, np.int64)
    flat = lab.reshape(-1)
    return np.broadcast_to(flat, (v.shape[dim],)).copy() if flat.size == 1 else flat.copy()


def channel_zero(v: Value, dim: int) -> np.ndarray:
    dim = dim % v.ndim
    z = np.broadcast_to(v.zero, v.labels.shape)
    z = np.all(z, axis=tuple(d for d in range(v.ndim) if d != dim))
    return np.broadcast_to(z, (v.shape[dim],))


def values_in(args: object) -> list[Value]:
    found: list[Value] = []
    if isinstance(args, Value):
        return [args]
    if isinstance(args, list | tuple):
        for a in args:
            found.extend(values_in(a))
    return found


def size_args(call: Call) -> list[Any]:
    """The sizes a size-taking call was given, however it was spelt: ``x.view(2, -1)``,
    ``x.reshape((2, -1))``, ``torch.zeros(size=(2, 3))``, ``x.new_full((2, 3), 0.5)``."""
    rest = [a for a in call.args if not isinstance(a, Value)]
    if "shape" in call.kwargs or "size" in call.kwargs:
        rest = [call.kwargs.get("shape", call.kwargs.get("size"))]
    if call.name.endswith("new_full") or call.name == "torch.full":
        rest = rest[:1]  # (size, fill_value)
    if len(rest) == 1 and isinstance(rest[0], list | tuple):
        return list(rest[0])
    return rest
