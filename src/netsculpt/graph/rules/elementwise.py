"""Element-wise, activation, reduction and softmax rules."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from netsculpt.graph.builder import GraphBuilder, Value, nonzero_note
from netsculpt.graph.registry import Call, register_function_rule, tensor_methods
from netsculpt.graph.rules.common import (
    Operand,
    align,
    merge_elementwise,
    scalar_operand,
    set_output,
    shifted_view,
)

# f(0) == 0: a masked (all-zero) channel stays zero, so removing it later is exact.
ZERO_PRESERVING = [
    "relu",
    "relu6",
    "leaky_relu",
    "elu",
    "selu",
    "celu",
    "gelu",
    "silu",
    "mish",
    "hardswish",
    "tanh",
    "softsign",
    "tanhshrink",
    "softshrink",
    "hardshrink",
    "dropout",
    "dropout1d",
    "dropout2d",
    "dropout3d",
    "alpha_dropout",
    "feature_alpha_dropout",
    "neg",
    "negative",
    "abs",
    "sqrt",
    "square",
    "erf",
    "sin",
    "sinh",
    "asin",
    "atan",
    "sign",
    "floor",
    "ceil",
    "round",
    "trunc",
    "contiguous",
    "clone",
    "detach",
    "float",
    "double",
    "half",
    "bfloat16",
    "to",
    "type",
    "type_as",
    "cpu",
    "requires_grad_",
    "nan_to_num",
    "rrelu",
    "positive",
    "deg2rad",
    "expm1",
    "log1p",
    "conj",
    "resolve_conj",
    "resolve_neg",
]
NOT_ZERO_PRESERVING = [
    "sigmoid",
    "hardsigmoid",
    "softplus",
    "exp",
    "exp2",
    "cos",
    "cosh",
    "log",
    "log2",
    "log10",
    "logsigmoid",
    "rsqrt",
    "reciprocal",
    "logical_not",
    "bitwise_not",
    "acos",
    "erfc",
    "digamma",
]


# copies of their input's values: a parameter view stays one through them (Swin's ``.contiguous()``)
_COPIES = ("contiguous", "clone", "detach", "float", "double", "half", "bfloat16", "to", "type", "type_as")


def unary(zero_preserving: bool):
    def rule(ctx: GraphBuilder, call: Call) -> None:
        x = call.inputs[0] if call.inputs else None
        for out in call.outputs:
            if x is None or x.shape != out.shape:
                ctx.block(x.labels if x is not None else np.zeros(0), f"{call.where} changes the shape")
                continue
            out.labels = x.labels
            out.bcast = x.bcast
            out.zero = x.zero if zero_preserving else np.zeros_like(x.zero)
            if call.name.rsplit(".", 1)[-1] in _COPIES:
                out.view_of, out.view_shifted = x.view_of, x.view_shifted

    return rule


def clamp(ctx: GraphBuilder, call: Call) -> None:
    """Clamping keeps a zero channel at zero only when 0 lies inside [min, max].

    A tensor bound is an operand like ``other`` of ``torch.minimum``: a per-channel bound (PACT's
    learnable clipping level) is sliced with its channel and zeroed by masking, so ``clamp(0, 0, 0)``
    stays 0; any other tensor bound (``min=torch.tensor(0.1)``) is not known to keep zero.
    """
    lo, hi = _clamp_bounds(call)
    if not isinstance(lo, Value) and not isinstance(hi, Value):
        unary(_numbers_keep_zero(lo, hi))(ctx, call)
        return
    x, out = call.arg(0, "input"), call.outputs[0]
    ops = [align(v, out.ndim) for v in (x, lo, hi) if isinstance(v, Value)]
    labels, zero = merge_elementwise(ctx, ops, out.shape, "sum", call.where)
    numbers = _numbers_keep_zero(None if isinstance(lo, Value) else lo, None if isinstance(hi, Value) else hi)
    set_output(out, labels, zero & numbers)


def threshold(ctx: GraphBuilder, call: Call) -> None:
    """``threshold(x, t, v)`` maps 0 to ``v`` unless ``0 > t``: zero-preserving only then or if v == 0."""
    t, v = call.arg(1, "threshold"), call.arg(2, "value")
    keeps = (isinstance(t, int | float) and t < 0) or (isinstance(v, int | float) and v == 0)
    unary(keeps)(ctx, call)


def _clamp_bounds(call: Call) -> tuple[object, object]:
    """``(min, max)`` of a clamp-like call, however it was spelt (None: unbounded)."""
    if call.name.endswith(("hardtanh", "hardtanh_")):
        return call.arg(1, "min_val", -1.0), call.arg(2, "max_val", 1.0)
    if call.name.endswith(("clamp_min", "clamp_min_")):
        return call.arg(1, "min"), None
    if call.name.endswith(("clamp_max", "clamp_max_")):
        return None, call.arg(1, "max")
    return call.arg(1, "min"), call.arg(2, "max")


def _numbers_keep_zero(lo: object, hi: object) -> bool:
    return (lo is None or lo <= 0) and (hi is None or hi >= 0)


register_function_rule(*tensor_methods(*ZERO_PRESERVING))(unary(True))
register_function_rule(*tensor_methods("clamp", "clip", "clamp_min", "clamp_max", "hardtanh"))(clamp)
register_function_rule(*tensor_methods("threshold"))(threshold)
register_function_rule(*tensor_methods(*NOT_ZERO_PRESERVING))(unary(False))


def _operands(call: Call, names: tuple[str, ...]) -> list[object]:
    ops = list(call.args[: len(names)])
    for i, n in enumerate(names):
        if n in call.kwargs:
            if i < len(ops):
                ops[i] = call.kwargs[n]
            else:
                ops.append(call.kwargs[n])
    return ops


def elementwise(kind: str, names: tuple[str, ...] = ("input", "other")):
    def rule(ctx: GraphBuilder, call: Call) -> None:
        out = call.outputs[0]
        ops: list[Operand] = []
        for a in _operands(call, names):
            if isinstance(a, Value):
                ops.append(align(a, out.ndim))
            elif isinstance(a, int | float | bool):
                ops.append(scalar_operand(a, out.ndim))
        labels, zero = merge_elementwise(ctx, ops, out.shape, kind, call.where)
        set_output(out, labels, zero)
        if kind == "sum" and not (out.labels >= 0).any():
            shifted_view(ops, out)

    return rule


register_function_rule(
    *tensor_methods("add", "sub", "subtract", "__add__", "__iadd__", "__radd__", "__sub__", "__isub__"),
    *tensor_methods("__rsub__", "rsub", "maximum", "minimum", "fmax", "fmin", "hypot"),
)(elementwise("sum"))
register_function_rule(
    *tensor_methods("mul", "multiply", "__mul__", "__imul__", "__rmul__", "__and__", "logical_and"),
)(elementwise("product"))
register_function_rule(
    *tensor_methods("div", "divide", "true_divide", "__truediv__", "__itruediv__", "floor_divide", "fmod"),
    *tensor_methods("remainder", "__floordiv__", "__mod__"),
)(elementwise("first"))
register_function_rule(
    *tensor_methods("eq", "ne", "lt", "le", "gt", "ge", "__eq__", "__ne__", "__lt__", "__le__", "__gt__"),
    *tensor_methods("__ge__", "__or__", "logical_or", "pow", "__pow__", "__rpow__", "__rtruediv__", "atan2"),
    *tensor_methods("__rdiv__", "__xor__", "isnan", "isinf", "isfinite", "bitwise_and", "bitwise_or"),
    *tensor_methods("copysign", "xlogy", "float_power"),
)(elementwise("none"))


@register_function_rule(*tensor_methods("where"))
def where(ctx: GraphBuilder, call: Call) -> None:
    """``where(c, a, b)`` picks element-wise; ``where(c)`` alone is ``nonzero(c, as_tuple=True)``: index
    tensors whose length depends on the values (Switch Transformers' routing). It was read as the first
    form and crashed on outputs of another rank."""
    if len(call.args) + len(call.kwargs) > 1:
        elementwise("where3", ("condition", "input", "other"))(ctx, call)
        return
    ctx.block(call.inputs[0].labels, f"{call.where} returns the positions of nonzero elements")
    for out in call.outputs:
        set_output(out, np.full((1,) * out.ndim, -1, np.int64), False)


register_function_rule(*tensor_methods("masked_fill"))(elementwise("first", ("input", "mask")))
register_function_rule(*tensor_methods("lerp", "addcmul", "addcdiv"))(
    elementwise("none", ("input", "tensor1", "tensor2"))
)


@register_function_rule(*tensor_methods("pow", "__pow__"))
def power(ctx: GraphBuilder, call: Call) -> None:
    exponent = call.arg(1, "exponent")
    x = call.args[0]
    if isinstance(x, Value) and isinstance(exponent, int | float) and exponent > 0:
        out = call.outputs[0]
        out.labels, out.zero, out.bcast = x.labels, x.zero, x.bcast
        return
    elementwise("none", ("input", "exponent"))(ctx, call)


@register_function_rule(*tensor_methods("zeros_like", "ones_like", "full_like", "empty_like", "rand_like"))
def like(ctx: GraphBuilder, call: Call) -> None:
    """``*_like`` tensors follow the input's shape, so they follow its channels too."""
    x = call.inputs[0]
    out = call.outputs[0]
    fill = call.arg(1, "fill_value", 0 if call.name.endswith("zeros_like") else 1)
    out.labels = x.labels
    keeps_zero = call.name.endswith(("zeros_like", "empty_like")) or fill == 0
    out.zero = np.full(x.labels.shape, keeps_zero)


# -- reductions ------------------------------------------------------------------------------------
def _reduced_dims(call: Call, x: Value) -> list[int]:
    dim = call.arg(1, "dim", call.kwargs.get("axis"))
    if dim is None or (isinstance(dim, list | tuple) and len(dim) == 0):
        return list(range(x.ndim))
    dims = [dim] if isinstance(dim, int) else list(dim)
    return sorted(d % x.ndim for d in dims)


def reduction(exact_if_zero: bool):
    """Sum-like reductions are exact when masked channels are zero; mean/max/var are not."""

    def rule(ctx: GraphBuilder, call: Call) -> None:
        if call.name.endswith(("max", "min")) and isinstance(call.arg(1, "other"), Value):
            # torch.max(a, b) / torch.min(a, b) with a tensor is maximum / minimum, not a reduction
            # (T5's relative position buckets); before, its tensor was read as the dims
            elementwise("sum")(ctx, call)
            return
        x = call.inputs[0]
        dims = _reduced_dims(call, x)
        lab = x.labels
        over_channels = any(lab.shape[d] > 1 for d in dims)
        kept = [d for d in range(x.ndim) if d not in dims and lab.shape[d] > 1]
        if over_channels and exact_if_zero and len(kept) == 1:
            # a sum over an outer split factor (ResNeSt's radix: (B, radix, C, H, W).sum(1)): output
            # channel j adds x[r, j] over r, so those are one channel, and the output keeps them
            _sum_over_split(ctx, call, x, dims, kept[0])
            return
        for out in call.outputs:
            if over_channels:
                if exact_if_zero:
                    ctx.consume(
                        lab,
                        x.zero,
                        f"{call.where} sums channels that are not zero when masked{nonzero_note(x)}",
                    )
                else:
                    ctx.block(
                        lab,
                        f"{call.where} reduces over these channels (the result depends on how many)",
                        soft=True,
                    )
                set_output(out, np.full((1,) * out.ndim, -1, np.int64), False)
                continue
            keep = [d for d in range(x.ndim) if d not in dims]
            if out.ndim == x.ndim:
                set_output(out, lab, x.zero)
            elif out.ndim == len(keep):
                set_output(
                    out,
                    lab.reshape([lab.shape[d] for d in keep]),
                    np.broadcast_to(x.zero, lab.shape).reshape([lab.shape[d] for d in keep]),
                )
            else:  # e.g. max(dim) returning (values, indices) of another rank: be conservative
                ctx.block(lab, f"{call.where} has an unexpected output rank")

    return rule


def _sum_over_split(ctx: GraphBuilder, call: Call, x: Value, dims: list[int], kept: int) -> None:
    lab = x.labels
    for d in dims:
        if lab.shape[d] > 1:
            ctx.tie_across(lab, [d], kept)
    first = tuple(slice(0, 1) if d in dims else slice(None) for d in range(x.ndim))
    out_lab = lab[first]
    out_zero = np.all(np.broadcast_to(x.zero, lab.shape), axis=tuple(dims), keepdims=True)
    for out in call.outputs:
        squeeze = tuple(dims) if out.ndim != x.ndim else ()
        set_output(out, out_lab.squeeze(squeeze), out_zero.squeeze(squeeze))


register_function_rule(
    *tensor_methods("sum", "nansum", "norm", "linalg_vector_norm"), torch.linalg.vector_norm
)(reduction(True))
register_function_rule(
    *tensor_methods("mean", "nanmean", "amax", "amin", "std", "var", "logsumexp", "prod"),
    *tensor_methods("median", "all", "any", "argmax", "argmin", "std_mean", "var_mean", "count_nonzero"),
)(reduction(False))
_max_min_reduction, _max_min_binary = reduction(False), elementwise("sum")


@register_function_rule(*tensor_methods("max", "min"))
def max_min(ctx: GraphBuilder, call: Call) -> None:
    """``torch.min(a, b)`` with a tensor ``b`` is ``torch.minimum`` (T5's relative-position buckets), not
    a reduction over ``dim=b``; with a dim or nothing it reduces."""
    if isinstance(call.arg(1, "other"), Value):
        _max_min_binary(ctx, call)
    else:
        _max_min_reduction(ctx, call)


@register_function_rule(
    *tensor_methods("softmax", "log_softmax", "softmin", "cumsum", "cumprod", "logcumsumexp")
)
def along_dim_mixing(ctx: GraphBuilder, call: Call) -> None:
    """Softmax-like ops mix values along ``dim``: inexact over channels, transparent elsewhere."""
    x = call.inputs[0]
    dim = call.arg(1, "dim")
    out = call.outputs[0]
    if dim is None:
        dim = -1
    dim %= x.ndim
    if x.labels.shape[dim] > 1:
        ctx.block(x.labels, f"{call.where} normalises across these channels", soft=True)
    out.labels = x.labels
    out.zero = np.zeros_like(x.zero)


@register_function_rule(F.normalize)
def l2_normalize(ctx: GraphBuilder, call: Call) -> None:
    """L2 normalisation over channels is exact: zero channels add nothing to the norm."""
    x = call.inputs[0]
    out = call.outputs[0]
    p = call.arg(1, "p", 2.0)
    dim = call.arg(2, "dim", 1) % x.ndim
    if x.labels.shape[dim] > 1:
        if p == 2.0:
            ctx.consume(
                x.labels,
                x.zero,
                f"{call.where} normalises channels that are not zero when masked{nonzero_note(x)}",
            )
        else:
            ctx.block(x.labels, f"{call.where} normalises across these channels", soft=True)
    out.labels, out.zero = x.labels, x.zero
