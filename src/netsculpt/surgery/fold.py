"""Exact folds for deployment (eval mode): BatchNorm into the layer before it, and conv -> conv merges.

``bn``: ``y = g * (W x + b - mean) / sqrt(var + eps) + beta`` is one conv/linear with
``W' = W * g / s`` and ``b' = (b - mean) * g / s + beta``; the BN becomes ``nn.Identity``.
``conv``: two convolutions with nothing between them are one convolution when one of them is a 1×1
with stride 1 and no padding (``1×1 -> k×k`` needs the 1×1 to have no bias or the k×k no padding: zero
padding of a biased map is not the bias). Grouped and depthwise convs merge too: a grouped conv is a dense
one whose weight is zero across groups, so both are written dense first and the merged conv is dense
(DepthShrinker's merge of an inverted residual: 1×1 → depthwise k×k → 1×1 becomes one k×k conv). The
first module becomes the merged conv, the second ``nn.Identity``; chains merge pair by pair.

:func:`fold_structure_` rebuilds the shapes only (what ``ns.load`` replays before it loads the saved
weights); :func:`fold_` also computes the folded weights.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from netsculpt.errors import PruningError
from netsculpt.surgery.depth import set_module

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def _padding(conv: nn.Module) -> tuple[int, ...] | None:
    """The conv's padding as numbers ("valid" is none, "same" half the kernel's reach), or None when
    "same" pads one side more than the other (an even kernel), which a merged conv cannot express."""
    if not isinstance(conv.padding, str):
        return tuple(conv.padding)
    if conv.padding == "valid":
        return (0,) * len(conv.kernel_size)
    reach = [d * (k - 1) for d, k in zip(conv.dilation, conv.kernel_size)]
    return tuple(r // 2 for r in reach) if all(r % 2 == 0 for r in reach) else None


def _is_pointwise(conv: nn.Module) -> bool:
    """A 1×1 with stride 1 and no padding (any groups: a grouped one is densified before merging)."""
    return (
        all(k == 1 for k in conv.kernel_size)
        and all(s == 1 for s in conv.stride)
        and _padding(conv) == (0,) * len(conv.kernel_size)
    )


def _dense_weight(conv: nn.Module) -> torch.Tensor:
    """The ``groups=1`` weight computing what ``conv`` computes: zero between channels of different groups."""
    if conv.groups == 1:
        return conv.weight
    out_per, in_per = conv.out_channels // conv.groups, conv.in_channels // conv.groups
    dense = conv.weight.new_zeros((conv.out_channels, conv.in_channels, *conv.weight.shape[2:]))
    for g in range(conv.groups):
        rows, cols = slice(g * out_per, (g + 1) * out_per), slice(g * in_per, (g + 1) * in_per)
        dense[rows, cols] = conv.weight[rows]
    return dense


def why_not(first: nn.Module, second: nn.Module, kind: str) -> str:
    """Empty when the pair folds exactly, else the reason it does not."""
    if kind == "bn":
        if not isinstance(first, (*_CONV, nn.Linear)) or not isinstance(second, _BN):
            return f"{type(first).__name__} -> {type(second).__name__} is not a conv/linear -> BatchNorm pair"
        if not second.track_running_stats or second.running_mean is None:
            return "the BatchNorm has no running statistics (it normalises each batch by itself)"
        return ""
    if not isinstance(first, _CONV) or type(first) is not type(second):
        return "only two convolutions of the same dimension merge"
    if first.padding_mode != "zeros" or second.padding_mode != "zeros":
        return "a padding mode other than zeros"
    if _padding(first) is None or _padding(second) is None:
        return "padding='same' with an even kernel pads one side more than the other"
    if _is_pointwise(second):
        return ""
    if _is_pointwise(first):
        if first.bias is not None and any(p > 0 for p in _padding(second)):
            return "the 1x1 conv has a bias and the next conv pads with zeros (the border would differ)"
        return ""
    return "neither conv is a 1x1 with stride 1 and no padding"


def merge_grows(first: nn.Module, second: nn.Module) -> bool:
    """True when the one conv that replaces the pair costs more MACs than the two: a linear bottleneck
    (960 -> 320 -> 1280 becomes 960 -> 1280) or a depthwise conv made dense; such a merge saves a layer and
    costs compute. Counted per output position of the merged conv (the second's): the first runs at
    ``prod(second.stride)`` times as many positions."""
    outer = first if _is_pointwise(second) else second
    merged = first.in_channels * second.out_channels * math.prod(outer.kernel_size)
    return merged > first.weight.numel() * math.prod(second.stride) + second.weight.numel()


def _merged_shell(first: nn.Module, second: nn.Module) -> nn.Module:
    cls = type(first)
    outer = first if _is_pointwise(second) else second
    return cls(
        first.in_channels,
        second.out_channels,
        outer.kernel_size,
        stride=outer.stride,
        padding=_padding(outer),
        dilation=outer.dilation,
        groups=1,
        bias=True,
        device=first.weight.device,
        dtype=first.weight.dtype,
    )


def _bn_shell(first: nn.Module) -> nn.Module:
    if first.bias is not None:
        return first
    if isinstance(first, nn.Linear):
        new = nn.Linear(first.in_features, first.out_features, bias=True)
    else:
        new = type(first)(
            first.in_channels,
            first.out_channels,
            first.kernel_size,
            stride=first.stride,
            padding=first.padding,
            dilation=first.dilation,
            groups=first.groups,
            bias=True,
            padding_mode=first.padding_mode,
        )
    return new.to(first.weight.device, first.weight.dtype)


@torch.no_grad()
def _fold_bn(first: nn.Module, bn: nn.Module) -> nn.Module:
    new = _bn_shell(first)
    scale = (
        bn.weight / torch.sqrt(bn.running_var + bn.eps)
        if bn.affine
        else 1 / torch.sqrt(bn.running_var + bn.eps)
    )
    shift = bn.bias if bn.affine else torch.zeros_like(bn.running_mean)
    bias = first.bias if first.bias is not None else torch.zeros_like(bn.running_mean)
    view = (-1,) + (1,) * (first.weight.ndim - 1)
    new.weight.copy_(first.weight * scale.reshape(view))
    new.bias.copy_((bias - bn.running_mean) * scale + shift)
    return new


@torch.no_grad()
def _merge_convs(first: nn.Module, second: nn.Module) -> nn.Module:
    new = _merged_shell(first, second)
    b1 = first.bias if first.bias is not None else torch.zeros(first.out_channels, dtype=first.weight.dtype)
    b2 = (
        second.bias if second.bias is not None else torch.zeros(second.out_channels, dtype=first.weight.dtype)
    )
    w_first, w_second = _dense_weight(first), _dense_weight(second)
    if _is_pointwise(second):  # k x k then 1 x 1: W = W2 @ W1 at every tap
        w2 = w_second.flatten(1)
        new.weight.copy_(torch.einsum("om,mi...->oi...", w2, w_first))
        new.bias.copy_(w2 @ b1 + b2)
    else:  # 1 x 1 then k x k
        w1 = w_first.flatten(1)
        new.weight.copy_(torch.einsum("om...,mi->oi...", w_second, w1))
        new.bias.copy_(w_second.flatten(2).sum(-1) @ b1 + b2)
    return new


def _pair(model: nn.Module, merge: dict[str, Any]) -> tuple[nn.Module, nn.Module]:
    modules = dict(model.named_modules())
    for key in ("first", "second"):
        if merge[key] not in modules:
            raise PruningError(f"fold: {merge[key]!r} is not a module of this model")
    first, second = modules[merge["first"]], modules[merge["second"]]
    reason = why_not(first, second, merge["op"])
    if reason:
        raise PruningError(f"cannot fold {merge['first']} -> {merge['second']}: {reason}")
    return first, second


def fold_(model: nn.Module, merges: list[dict[str, Any]]) -> nn.Module:
    """Apply ``merges`` (``{"op": "bn"|"conv", "first", "second"}``) in order, computing weights."""
    for merge in merges:
        first, second = _pair(model, merge)
        new = _fold_bn(first, second) if merge["op"] == "bn" else _merge_convs(first, second)
        set_module(model, merge["first"], new)
        set_module(model, merge["second"], nn.Identity())
    return model


def fold_structure_(model: nn.Module, merges: list[dict[str, Any]]) -> nn.Module:
    """The shapes :func:`fold_` leaves, without computing weights (they are loaded afterwards)."""
    for merge in merges:
        first, second = _pair(model, merge)
        new = _bn_shell(first) if merge["op"] == "bn" else _merged_shell(first, second)
        set_module(model, merge["first"], new)
        set_module(model, merge["second"], nn.Identity())
    return model
