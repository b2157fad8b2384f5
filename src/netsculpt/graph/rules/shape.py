"""Rules for ops that move elements without computing: views, permutes, expand, repeat, flips."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from netsculpt.graph.builder import GraphBuilder, Value
from netsculpt.graph.labels import match_reshape_dims, reshape_labels
from netsculpt.graph.registry import Call, register_function_rule, register_property_rule, tensor_methods
from netsculpt.graph.rules import heads
from netsculpt.graph.rules.common import set_output, size_args


def _reshape_to(ctx: GraphBuilder, x: Value, out: Value, sizes: list | None) -> dict[int, tuple[str, str]]:
    """Labels of a reshape; returns the dims sized by a module attribute the surgery rewrites (heads.py)."""
    labels, splits = reshape_labels(x.labels, x.shape, out.shape)
    zero, _ = reshape_labels(np.broadcast_to(x.zero, x.labels.shape).astype(np.int64), x.shape, out.shape)
    zero = zero.astype(bool)
    by_attribute = heads.attribute_sizes(sizes, splits)
    for dims in splits:
        head = heads.head_axis(dims, sizes, by_attribute)
        if head is None:
            # a channel dim viewed as (groups, ..., per_group): groups is a constant in the model's code,
            # so every group must lose the same positions of the innermost factor.
            ctx.tie_across(labels, dims[:-1], dims[-1])
        else:  # (heads, head_dim) with head_dim fixed: whole heads go
            labels, zero = heads.tie_heads(ctx, labels, zero, dims, head)
    set_output(out, labels, np.broadcast_to(zero, labels.shape))
    return {j: a for j, a in by_attribute.items() if out.labels.shape[j] > 1}


@register_function_rule(
    *tensor_methods("view", "reshape", "flatten", "unflatten", "view_as", "reshape_as", "squeeze"),
    *tensor_methods("unsqueeze", "ravel", "atleast_1d", "atleast_2d", "atleast_3d"),
)
def view_like(ctx: GraphBuilder, call: Call) -> None:
    x = call.inputs[0]
    out = call.outputs[0]
    if out.ndim == x.ndim and out.shape == x.shape:
        out.labels, out.zero, out.bcast, out.view_of = x.labels, x.zero, x.bcast, x.view_of
        return
    sizes = size_args(call)
    sizes = sizes if len(sizes) == out.ndim else None  # flatten(1) / unsqueeze(-1) give dims, not sizes
    written = sizes if call.name.endswith(("view", "reshape")) else None
    follow = _reshape_to(ctx, x, out, written)
    out.view_of = _parameter_view(call, x, out, sizes)
    out.view_shifted = x.view_shifted
    kept = _kept_bcast(x, out) if not (out.labels >= 0).any() else ()
    if any(kept):
        out.bcast = kept
    if written is not None:
        for j, n in enumerate(written):
            if heads.fixed(n) and out.labels.shape[j] > 1 and j not in follow:
                # a size the code writes as a constant cannot shrink (a ``self.head_dim`` split)
                note = heads.head_count_note(written, j, out.labels.shape)
                ctx.keep_dim(
                    out.labels, j, f"{call.where} writes the size of this dim as a constant ({n}){note}"
                )
        heads.record_attributes(ctx, out, follow)


def _viewed_parameter(x: Value) -> tuple[int, tuple] | None:
    """``(parameter id, its dim for each of x's dims)`` when ``x`` holds no channels and is a parameter
    or a view of one (reshape, permute and expand rules keep following it); else ``None``."""
    if (x.labels >= 0).any():
        return None
    if x.param is not None and not x.is_buffer:
        return x.id, tuple(range(x.ndim))
    return x.view_of


def _parameter_view(call: Call, x: Value, out: Value, sizes: list | None) -> tuple | None:
    """Follow an unlabelled parameter through a reshape: a dim kept whole (alone in its run of the
    reshape, besides size-1 dims) still shows the parameter's dim when its size follows pruning (``-1``,
    or a squeeze / unsqueeze / flatten, which write no sizes)."""
    if (viewed := _viewed_parameter(x)) is None:
        return None
    base, dims = viewed
    by_name = call.name.endswith(("unsqueeze", "squeeze", "flatten", "ravel"))
    mapping: list[int | None] = [None] * out.ndim
    for gi, gj in match_reshape_dims(x.shape, out.shape):
        big_in, big_out = [d for d in gi if x.shape[d] != 1], [d for d in gj if out.shape[d] != 1]
        if len(big_in) == 1 and len(big_out) == 1:
            o = big_out[0]
            follows = by_name or (sizes is not None and sizes[o] == -1)
            mapping[o] = dims[big_in[0]] if follows else None
    return (base, tuple(mapping)) if any(m is not None for m in mapping) else None


def _kept_bcast(x: Value, out: Value) -> tuple[bool, ...]:
    """Copies along a dim stay copies when a reshape keeps that dim whole (a mask expanded over heads)."""
    if not any(x.bcast):
        return ()
    bcast = [False] * out.ndim
    for gi, gj in match_reshape_dims(x.shape, out.shape):
        big_in, big_out = [d for d in gi if x.shape[d] != 1], [d for d in gj if out.shape[d] != 1]
        if len(big_in) == 1 and len(big_out) == 1:
            bcast[big_out[0]] = x.bcast[big_in[0]]
    return tuple(bcast)


def _permutation(call: Call, ndim: int) -> list[int]:
    name = call.name.rsplit(".", 1)[-1]
    if name == "permute":
        dims = (
            call.args[1:] if len(call.args) > 2 or not isinstance(call.arg(1, "dims"), list | tuple) else None
        )
        dims = list(dims) if dims is not None else list(call.arg(1, "dims"))
        return [d % ndim for d in dims]
    perm = list(range(ndim))
    if name in ("T", "numpy_T"):
        return perm[::-1]
    if name in ("mT", "mH", "H"):
        a, b = ndim - 2, ndim - 1
    elif name in ("movedim", "moveaxis"):
        src, dst = call.arg(1, "source"), call.arg(2, "destination")
        src = [src] if isinstance(src, int) else list(src)
        dst = [dst] if isinstance(dst, int) else list(dst)
        order = [d for d in range(ndim) if d not in [s % ndim for s in src]]
        for s, d in sorted(zip([s % ndim for s in src], [d % ndim for d in dst]), key=lambda p: p[1]):
            order.insert(d, s)
        return order
    else:  # transpose / swapaxes / swapdims / t
        a, b = call.arg(1, "dim0", 0), call.arg(2, "dim1", 1)
        if name == "t":
            a, b = 0, ndim - 1
    a, b = a % ndim, b % ndim
    perm[a], perm[b] = perm[b], perm[a]
    return perm


@register_function_rule(
    *tensor_methods("permute", "transpose", "swapaxes", "swapdims", "t", "movedim", "moveaxis")
)
def permute(ctx: GraphBuilder, call: Call) -> None:
    x = call.inputs[0]
    out = call.outputs[0]
    perm = _permutation(call, x.ndim) if x.ndim > 1 else [0] * x.ndim
    out.labels = np.transpose(x.labels, perm) if x.ndim > 1 else x.labels
    out.zero = np.transpose(np.broadcast_to(x.zero, x.labels.shape), perm) if x.ndim > 1 else x.zero
    out.bcast = tuple(x.bcast[p] for p in perm) if x.bcast else ()
    if x.ndim > 1 and (viewed := _viewed_parameter(x)) is not None:
        # a transposed parameter stays a view of it (a weight stored (in, out) used as (out, in); Swin's
        # gathered bias table permuted heads-first)
        base, dims = viewed
        out.view_of = (base, tuple(dims[p] for p in perm))
        if x.view_of is not None:
            out.view_shifted = x.view_shifted


register_property_rule("T", "mT", "H", "mH")(permute)


@register_property_rule("data", "real")
def identity_property(ctx: GraphBuilder, call: Call) -> None:
    x = call.inputs[0]
    out = call.outputs[0]
    out.labels, out.zero, out.bcast = x.labels, x.zero, x.bcast


@register_function_rule(*tensor_methods("expand", "expand_as", "broadcast_to"))
def expand(ctx: GraphBuilder, call: Call) -> None:
    """Expanded elements are copies: element-wise rules treat them as broadcast, not as channels."""
    x = call.inputs[0]
    out = call.outputs[0]
    pad = out.ndim - x.ndim
    lab = x.labels.reshape((1,) * pad + x.labels.shape)
    zero = np.broadcast_to(x.zero, x.labels.shape).reshape(lab.shape)
    xs = (1,) * pad + x.shape
    xb = (True,) * pad + (x.bcast or (False,) * x.ndim)
    out.labels, out.zero = lab, zero
    out.bcast = tuple(xb[d] or (xs[d] == 1 and out.shape[d] > 1) for d in range(out.ndim))
    out.view_of = _expanded_parameter(x, out, pad)


def _expanded_parameter(x: Value, out: Value, pad: int) -> tuple | None:
    """A parameter expanded over new or size-1 dims (a class token ``cls_token.expand(B, -1, -1)``) is
    still that parameter along the dims it keeps: ``torch.cat`` can then give it the rows' channels."""
    if (viewed := _viewed_parameter(x)) is None:
        return None
    base, dims = viewed
    kept = [dims[d] if x.shape[d] > 1 else None for d in range(x.ndim)]
    mapping = (None,) * pad + tuple(kept)
    return (base, mapping) if any(m is not None for m in mapping) else None


@register_function_rule(*tensor_methods("repeat", "tile"))
def repeat(ctx: GraphBuilder, call: Call) -> None:
    """Repeating a channel dim duplicates every channel; removing one removes all its copies."""
    x = call.inputs[0]
    out = call.outputs[0]
    pad = out.ndim - x.ndim
    lab = x.labels.reshape((1,) * pad + x.labels.shape)
    reps = [out.shape[d] // ((1,) * pad + x.shape)[d] for d in range(out.ndim)]
    tiled = np.tile(lab, [r if lab.shape[d] > 1 else 1 for d, r in enumerate(reps)])
    zero = np.broadcast_to(x.zero, x.labels.shape).reshape(lab.shape)
    set_output(out, tiled, np.tile(zero, [r if lab.shape[d] > 1 else 1 for d, r in enumerate(reps)]))


@register_function_rule(*tensor_methods("flip", "fliplr", "flipud", "roll"))
def flip_roll(ctx: GraphBuilder, call: Call) -> None:
    x = call.inputs[0]
    out = call.outputs[0]
    name = call.name.rsplit(".", 1)[-1]
    if name == "roll":
        dims = call.arg(2, "dims")
        dims = list(range(x.ndim)) if dims is None else ([dims] if isinstance(dims, int) else list(dims))
        for d in dims:
            ctx.keep_dim(x.labels, d % x.ndim, f"{call.where} shifts positions by a fixed amount")
        out.labels, out.zero = x.labels, x.zero
        return
    given = call.args[1:] if len(call.args) > 2 else call.arg(1, "dims")  # x.flip(-1) / flip(x, (0, 1))
    dims = {"fliplr": [1], "flipud": [0]}.get(name) or ([given] if isinstance(given, int) else list(given))
    axes = tuple(d % x.ndim for d in dims if x.labels.shape[d % x.ndim] > 1)
    out.labels = np.flip(x.labels, axes) if axes else x.labels
    out.zero = np.flip(np.broadcast_to(x.zero, x.labels.shape), axes) if axes else x.zero


@register_function_rule(F.pixel_shuffle, F.pixel_unshuffle, torch.pixel_shuffle, torch.pixel_unshuffle)
def pixel_shuffle(ctx: GraphBuilder, call: Call) -> None:
    x = call.inputs[0]
    out = call.outputs[0]
    c_dim = x.ndim - 3
    lab = x.labels
    if any(lab.shape[d] > 1 for d in range(x.ndim) if d != c_dim):
        ctx.block(lab, f"{call.where} moves channels that are spread over several dims")
        set_output(out, np.full((1,) * out.ndim, -1, np.int64), False)
        return
    atoms = np.broadcast_to(lab.reshape(-1), (x.shape[c_dim],))
    if out.shape[c_dim] < x.shape[c_dim]:  # shuffle: r*r input channels become one output channel
        groups = atoms.reshape(out.shape[c_dim], -1)
        for k in range(1, groups.shape[1]):
            ctx.union(groups[:, 0], groups[:, k])
        new = groups[:, 0]
    else:  # unshuffle: each input channel becomes r*r output channels
        new = np.repeat(atoms, out.shape[c_dim] // x.shape[c_dim])
    shape = [1] * out.ndim
    shape[c_dim] = new.shape[0]
    set_output(out, new.reshape(shape), np.broadcast_to(x.zero, lab.shape).all())
