"""Convolution, normalisation, pooling and other layer-level functional ops."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from netsculpt.graph.builder import ROLE_IN, ROLE_OUT, ROLE_STAT, GraphBuilder, Value, nonzero_note
from netsculpt.graph.labels import NO_CHANNEL, along
from netsculpt.graph.registry import Call, register_function_rule, tensor_methods
from netsculpt.graph.rules.common import channel_atoms, channel_zero, set_output


def _block_spatial(ctx: GraphBuilder, x: Value, spatial: list[int], where: str) -> None:
    if any(x.labels.shape[d] > 1 for d in spatial):
        ctx.block(x.labels, f"{where} mixes positions that carry channels")


def _computed_weight(ctx: GraphBuilder, call: Call, x: Value, w: Value, b: object) -> bool:
    """A weight computed in ``forward`` (weight standardisation, ``parametrize``'d weight norm) has no
    parameter slice netsculpt could remove: pin what the conv reads and writes instead of guessing."""
    if w.param is not None and not w.is_buffer:
        return False
    reason = (
        f"{call.where} uses a weight computed in forward ({w.origin}), not a parameter: its channels "
        "cannot be mapped to parameter slices (a weight norm, parametrization or torch.nn.utils.prune mask "
        "can be removed first; ns.prune's warning names the call)"
    )
    ctx.block(x.labels, reason)
    if isinstance(b, Value):
        ctx.block(ctx.member(b, 0, ROLE_OUT), reason)
    out = call.outputs[0]
    set_output(out, np.full((1,) * out.ndim, NO_CHANNEL, np.int64), False)
    return True


@register_function_rule(torch.conv1d, torch.conv2d, torch.conv3d, F.conv1d, F.conv2d, F.conv3d)
def conv(ctx: GraphBuilder, call: Call) -> None:
    """Output channels are new (weight dim 0); input channels couple with weight dim 1 by groups.

    Depthwise-style convs (one input channel per group) keep channels aligned: input channel ``k``
    feeds output channels ``k*m .. k*m+m-1`` and the group count follows the pruning. Other grouped
    convs keep their group count, so every group loses the same positions.
    """
    x, w = call.arg(0, "input"), call.arg(1, "weight")
    b = call.arg(2, "bias")
    groups = call.arg(6, "groups", 1)
    out = call.outputs[0]
    c_dim = x.ndim - w.ndim + 1  # 1 for batched input, 0 for unbatched
    if _computed_weight(ctx, call, x, w, b):
        return
    _block_spatial(ctx, x, [d for d in range(x.ndim) if d != c_dim and d >= c_dim], call.where)
    if any(x.labels.shape[d] > 1 for d in range(c_dim)):
        ctx.block(x.labels, f"{call.where} sees channels spread over the batch dimension")
    xin = channel_atoms(ctx, x, c_dim, call.where)
    ctx.consume(
        xin,
        channel_zero(x, c_dim),
        f"{call.where} reads channels that are not zero when masked{nonzero_note(x)}",
    )
    c_in, c_out, per_group = x.shape[c_dim], w.shape[0], w.shape[1]
    w_out = ctx.member(w, 0, ROLE_OUT)
    if groups == 1:
        ctx.couple(xin, ctx.member(w, 1, ROLE_IN), f"{call.where} reads {x.origin}")
    elif per_group == 1:
        mult = c_out // groups
        ctx.couple(np.repeat(xin, mult), w_out, f"{call.where} (depthwise) reads {x.origin}")
    else:
        w_in = ctx.member(w, 1, ROLE_IN)
        grid = xin.reshape(groups, c_in // groups)
        for g in range(groups):
            ctx.couple(grid[g], w_in, f"{call.where} (grouped) reads {x.origin}")
        out_grid = w_out.reshape(groups, c_out // groups)
        ctx.tie_across(out_grid, [0], 1)
    if isinstance(b, Value):
        ctx.union(ctx.member(b, 0, ROLE_OUT), w_out)
    set_output(out, along(w_out, c_dim, out.ndim), True)


@register_function_rule(
    torch.conv_transpose1d,
    torch.conv_transpose2d,
    torch.conv_transpose3d,
    F.conv_transpose1d,
    F.conv_transpose2d,
    F.conv_transpose3d,
)
def conv_transpose(ctx: GraphBuilder, call: Call) -> None:
    """Transposed conv weights are (in, out/groups, k...): the roles of dims 0 and 1 swap.

    A depthwise one (one input channel per group) keeps channels aligned, as the forward rule does:
    input channel ``k`` is group ``k`` and writes outputs ``k*m .. k*m+m-1``, so whole groups go and the
    group count follows the pruning.
    """
    x, w = call.arg(0, "input"), call.arg(1, "weight")
    b = call.arg(2, "bias")
    groups = call.arg(6, "groups", 1)
    out = call.outputs[0]
    c_dim = x.ndim - w.ndim + 1
    if _computed_weight(ctx, call, x, w, b):
        return
    _block_spatial(ctx, x, [d for d in range(c_dim + 1, x.ndim)], call.where)
    xin = channel_atoms(ctx, x, c_dim, call.where)
    ctx.consume(
        xin,
        channel_zero(x, c_dim),
        f"{call.where} reads channels that are not zero when masked{nonzero_note(x)}",
    )
    if groups > 1 and w.shape[0] == groups:
        w_ch = ctx.member(w, 0, ROLE_OUT)  # w[k] writes only channel k's outputs: zeroed with it
        ctx.couple(xin, w_ch, f"{call.where} (depthwise) reads {x.origin}")
        out_atoms = ctx.fresh(groups * w.shape[1])
        ctx.couple(out_atoms, np.repeat(w_ch, w.shape[1]), f"{call.where} (depthwise) writes group k")
        if isinstance(b, Value):
            ctx.couple(ctx.member(b, 0, ROLE_OUT), out_atoms, f"{call.where} has a bias")
        set_output(out, along(out_atoms, c_dim, out.ndim), True)
        return
    w_in = ctx.member(w, 0, ROLE_IN)
    ctx.couple(xin, w_in, f"{call.where} reads {x.origin}")
    w_out = ctx.member(w, 1, ROLE_OUT)
    if groups > 1:
        ctx.tie_across(w_in.reshape(groups, -1), [0], 1)
        # each group's outputs are positions of their own, one channel across the groups (as the
        # forward rule's tie_across): repeated atoms made criteria that read activations refuse the site
        out_atoms = ctx.fresh(groups * w_out.shape[0])
        for g, part in enumerate(out_atoms.reshape(groups, -1)):
            ctx.couple(part, w_out, f"{call.where} (grouped) writes group {g}")
    else:
        out_atoms = w_out
    if isinstance(b, Value):
        ctx.couple(ctx.member(b, 0, ROLE_OUT), out_atoms, f"{call.where} has a bias")
    set_output(out, along(out_atoms, c_dim, out.ndim), True)


def _per_channel_norm(
    ctx: GraphBuilder,
    call: Call,
    params: list[tuple[object, str]],
    affine_zero: bool,
    own_stats: bool = False,
) -> None:
    x = call.inputs[0]
    out = call.outputs[0]
    c_dim = 1 if x.ndim > 1 else 0
    atoms = channel_atoms(ctx, x, c_dim, call.where)
    for p, role in params:
        if isinstance(p, Value):
            ctx.couple(atoms, ctx.member(p, 0, role), f"{call.where} normalises a non-channel input")
    out.labels = x.labels
    if affine_zero:
        out.zero = np.ones_like(x.zero)
    else:  # normalised by its own statistics, a zero channel stays (0 - 0) / sqrt(0 + eps) = 0
        out.zero = x.zero.copy() if own_stats else np.zeros_like(x.zero)


@register_function_rule(F.batch_norm, torch.batch_norm, F.instance_norm, torch.instance_norm)
def batch_norm(ctx: GraphBuilder, call: Call) -> None:
    """Per-channel affine (batch norm in eval mode, instance norm): masking zeroes weight and bias, so the
    output is exactly zero. ``F.batch_norm`` / ``F.instance_norm`` take (input, running_mean, running_var,
    weight, bias, ...), the ``torch.`` ones (input, weight, bias, running_mean, running_var, ...).

    Without an affine, instance norm on the input's own statistics (``InstanceNorm2d()``'s default, as in
    RAFT's feature encoder) still maps a masked, all-zero channel to zero; running statistics would not."""
    if call.name.startswith("torch."):  # torch.batch_norm / torch.instance_norm order the tensors
        weight, bias = call.arg(1, "weight"), call.arg(2, "bias")  # (input, weight, bias, mean, var, ...)
        mean, var = call.arg(3, "running_mean"), call.arg(4, "running_var")
    else:
        mean, var = call.arg(1, "running_mean"), call.arg(2, "running_var")
        weight, bias = call.arg(3, "weight"), call.arg(4, "bias")
    affine = isinstance(weight, Value) and isinstance(bias, Value)
    params = [(mean, ROLE_STAT), (var, ROLE_STAT), (weight, ROLE_OUT), (bias, ROLE_OUT)]
    own_stats = "instance_norm" in call.name and bool(call.arg(5, "use_input_stats", True))
    _per_channel_norm(ctx, call, params, affine, own_stats)


@register_function_rule(F.layer_norm, torch.layer_norm, F.rms_norm, *tensor_methods("rms_norm"))
def layer_norm(ctx: GraphBuilder, call: Call) -> None:
    """Statistics over the normalised dims: removing a channel there changes every other channel."""
    x = call.inputs[0]
    out = call.outputs[0]
    shape = call.arg(1, "normalized_shape")
    k = len(shape) if isinstance(shape, list | tuple) else 1
    norm_dims = list(range(x.ndim - k, x.ndim))
    weight, bias = call.arg(2, "weight"), call.arg(3, "bias")
    if any(x.labels.shape[d] > 1 for d in norm_dims):
        ctx.block(
            x.labels, f"{call.where} normalises over these channels (mean and variance change)", soft=True
        )
        vary = [d for d in norm_dims if x.labels.shape[d] > 1]
        if len(vary) == 1:
            atoms = channel_atoms(ctx, x, vary[0], call.where)
            for p in (weight, bias):
                if isinstance(p, Value):
                    ctx.couple(atoms, ctx.member(p, vary[0] - (x.ndim - k), ROLE_OUT), call.where)
        else:
            ctx.block(x.labels, f"{call.where} normalises channels spread over several dims")
    out.labels = x.labels
    affine = isinstance(weight, Value) and (isinstance(bias, Value) or "rms" in call.name)
    out.zero = np.ones_like(x.zero) if affine else np.zeros_like(x.zero)


@register_function_rule(F.group_norm, torch.group_norm)
def group_norm(ctx: GraphBuilder, call: Call) -> None:
    """Statistics are per group: removing a *whole* group leaves the others exactly as they were.

    An ``nn.GroupNorm`` with several groups makes each of its groups one channel (the fixup lowers
    ``num_groups`` with it), exactly prunable: masked, a group's input and affine are zero, so its
    output is zero too. One group (``GroupNorm(1, C)``, a LayerNorm over channels) or a group count
    written in the model's code keeps the count: every group then loses the same positions, which
    changes the statistics (inexact).
    """
    x = call.inputs[0]
    out = call.outputs[0]
    groups = call.arg(1, "num_groups")
    weight, bias = call.arg(2, "weight"), call.arg(3, "bias")
    atoms = channel_atoms(ctx, x, 1, call.where)
    module = call.module_obj
    owned = isinstance(module, torch.nn.GroupNorm) and module.num_groups == groups
    whole = owned and groups > 1 and atoms.shape[0] % groups == 0
    if whole:
        ctx.tie_across(atoms.reshape(groups, -1), [1], 0)  # the channels of one group go together
    else:
        ctx.block(atoms, f"{call.where} normalises over groups of these channels", soft=True)
        if groups > 1 and atoms.shape[0] % groups == 0:
            ctx.tie_across(atoms.reshape(groups, -1), [0], 1)
    for p in (weight, bias):
        if isinstance(p, Value):
            ctx.couple(atoms, ctx.member(p, 0, ROLE_OUT), call.where)
    out.labels = x.labels
    out.zero = np.ones_like(x.zero) if isinstance(weight, Value) or whole else np.zeros_like(x.zero)


@register_function_rule(F.local_response_norm)
def local_response_norm(ctx: GraphBuilder, call: Call) -> None:
    x = call.inputs[0]
    ctx.block(x.labels, f"{call.where} normalises across neighbouring channels", soft=True)
    call.outputs[0].labels, call.outputs[0].zero = x.labels, np.zeros_like(x.zero)


def spatial(k: int | None):
    """Ops acting on the trailing ``k`` (spatial) dims independently per channel: pooling, resizing."""

    def rule(ctx: GraphBuilder, call: Call) -> None:
        x = call.inputs[0]
        n = k if k is not None else max(x.ndim - 2, 1)
        dims = list(range(x.ndim - n, x.ndim))
        _block_spatial(ctx, x, dims, call.where)
        lab = x.labels
        zero = np.broadcast_to(x.zero, lab.shape)
        for out in call.outputs:
            if out.ndim != x.ndim or out.shape[: x.ndim - n] != x.shape[: x.ndim - n]:
                ctx.block(lab, f"{call.where} changes non-spatial dims")
                set_output(out, np.full((1,) * out.ndim, NO_CHANNEL, np.int64), False)
                continue
            idx = tuple(0 if d in dims else slice(None) for d in range(x.ndim))
            keep = tuple(slice(None) if d not in dims else None for d in range(x.ndim))
            set_output(
                out,
                lab[idx][keep] if any(lab.shape[d] > 1 for d in dims) else lab,
                zero[idx][keep] if any(lab.shape[d] > 1 for d in dims) else zero,
            )
        for extra in call.outputs[1:]:  # pooling indices
            extra.zero = np.zeros_like(extra.zero)

    return rule


for _n, _k in [(1, 1), (2, 2), (3, 3)]:
    register_function_rule(
        getattr(F, f"max_pool{_n}d"),
        getattr(F, f"avg_pool{_n}d"),
        getattr(F, f"adaptive_avg_pool{_n}d"),
        getattr(F, f"adaptive_max_pool{_n}d"),
        getattr(F, f"lp_pool{_n}d", None),
        getattr(torch, f"max_pool{_n}d", None),
        getattr(torch, f"avg_pool{_n}d", None),
        getattr(torch, f"adaptive_avg_pool{_n}d", None),
        getattr(F, f"max_pool{_n}d_with_indices", None),
        getattr(F, f"adaptive_max_pool{_n}d_with_indices", None),
        getattr(F, f"fractional_max_pool{_n}d", None),
    )(spatial(_k))
register_function_rule(F.interpolate, F.upsample, F.upsample_bilinear, F.upsample_nearest)(spatial(None))


@register_function_rule(F.pad, torch._C._nn.pad)
def pad(ctx: GraphBuilder, call: Call) -> None:
    """Padded positions belong to no channel; channels keep their place relative to the padding.

    Reflect, replicate and circular padding copy each channel's own values when only dims without
    channels are padded (the spatial dims of a CycleGAN's ``ReflectionPad2d``), so a zero channel stays
    zero; a constant pad keeps it zero only if the constant is 0.
    """
    x = call.inputs[0]
    out = call.outputs[0]
    widths = list(call.arg(1, "pad"))
    value = call.arg(3, "value", 0.0) or 0.0
    mode = call.arg(2, "mode", "constant")
    lab = x.labels
    zero = np.broadcast_to(x.zero, lab.shape)
    spec = [(0, 0)] * x.ndim
    copies_own_channel = True  # a non-constant mode fills padding from the same channel's values
    for i in range(0, len(widths), 2):
        d = x.ndim - 1 - i // 2
        if lab.shape[d] > 1 and (widths[i] or widths[i + 1]):
            if mode != "constant" or min(widths[i], widths[i + 1]) < 0:
                ctx.keep_dim(lab, d, f"{call.where} pads this dimension by reflection or cropping")
            spec[d] = (max(widths[i], 0), max(widths[i + 1], 0))
            copies_own_channel = False
    if any(spec):
        lab = np.pad(lab, spec, constant_values=NO_CHANNEL) if mode == "constant" else lab
        zero = np.pad(zero, spec, constant_values=value == 0) if mode == "constant" else zero
    keeps_zero = value == 0 if mode == "constant" else copies_own_channel
    set_output(out, lab, zero if keeps_zero else np.zeros_like(zero))


@register_function_rule(F.embedding, torch.embedding)
def embedding(ctx: GraphBuilder, call: Call) -> None:
    idx, weight = call.arg(0, "input"), call.arg(1, "weight")
    if call.name.startswith("torch.embedding"):
        weight, idx = idx, weight
    out = call.outputs[0]
    atoms = ctx.member(weight, 1, ROLE_OUT)
    set_output(out, along(atoms, out.ndim - 1, out.ndim), True)


@register_function_rule(F.prelu, torch.prelu)
def prelu(ctx: GraphBuilder, call: Call) -> None:
    x, w = call.arg(0, "input"), call.arg(1, "weight")
    out = call.outputs[0]
    if isinstance(w, Value) and w.shape[0] > 1:
        ctx.couple(channel_atoms(ctx, x, 1, call.where), ctx.member(w, 0, ROLE_OUT), call.where)
    out.labels, out.zero = x.labels, x.zero


@register_function_rule(F.glu)
def glu(ctx: GraphBuilder, call: Call) -> None:
    """``a * sigmoid(b)`` for the two halves of ``dim``: channel ``i`` of each half pair up."""
    x = call.inputs[0]
    out = call.outputs[0]
    dim = call.arg(1, "dim", -1) % x.ndim
    if x.labels.shape[dim] > 1:
        atoms = channel_atoms(ctx, x, dim, call.where)
        half = atoms.reshape(2, -1)
        ctx.union(half[0], half[1])
        set_output(
            out,
            along(half[0], dim, out.ndim),
            channel_zero(x, dim)[: half.shape[1]].reshape([-1 if d == dim else 1 for d in range(out.ndim)]),
        )
    else:
        out.labels, out.zero = x.labels, x.zero
