"""Deconvolution-style recovery for pruning: refit each layer that lost input channels by least squares
so its outputs on calibration data match the unpruned model's, absorbing the removed filters' effect.

For a consumer conv (or linear) with kept inputs ``X`` (patches, via unfold) and the original model's
outputs ``Y`` at the same layer, the new weights solve ``min ||X W + b - Y||^2``; the normal equations are
accumulated batch by batch (memory: one (p+1) x (p+1) matrix per layer) and solved in float64. On the
data it was fitted to the refit is the best a layer of the smaller shape can do, and exact whenever the
removed channels were linear combinations of kept ones. Layers are refitted in module order, each on the
inputs the already-refitted pruned model gives it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from netsculpt.errors import ConfigError
from netsculpt.graph.channel_graph import ChannelGraph
from netsculpt.modes import module_modes, restore_modes
from netsculpt.progress import track
from netsculpt.surgery import PrunePlan


def _rows(module: nn.Module, x: Tensor) -> Tensor:
    """Input rows (samples or patches) of ``module``: (rows, in_features)."""
    if isinstance(module, nn.Linear):
        return x.reshape(-1, x.shape[-1])
    padding = module.padding
    if isinstance(padding, str) or module.padding_mode != "zeros":  # "same" / "valid", reflect, ...
        mode = "constant" if module.padding_mode == "zeros" else module.padding_mode
        x, padding = F.pad(x, module._reversed_padding_repeated_twice, mode=mode), 0
    cols = F.unfold(x, module.kernel_size, module.dilation, padding, module.stride)
    return cols.transpose(1, 2).reshape(-1, cols.shape[1])


def _targets(module: nn.Module, y: Tensor) -> Tensor:
    if isinstance(module, nn.Linear):
        return y.reshape(-1, y.shape[-1])
    return y.flatten(2).transpose(1, 2).reshape(-1, y.shape[1])


def _capture(model: nn.Module, name: str, batch: Tensor, which: str) -> Tensor:
    module = model.get_submodule(name)
    seen: list[Tensor] = []
    hook = module.register_forward_hook(lambda m, a, out: seen.append(a[0] if which == "in" else out))
    try:
        with torch.no_grad():
            model(batch)
    finally:
        hook.remove()
    return seen[0]


def kept_outputs(graph: ChannelGraph, plan: PrunePlan) -> dict[str, list[int]]:
    """Layer name → the output positions a plan keeps (for layers whose outputs the plan prunes)."""
    kept: dict[str, list[int]] = {}
    for group in graph.groups:
        if group.id not in plan.keep:
            continue
        for member in group.members:
            if member.role == "out" and member.dim == 0 and member.name.endswith(".weight"):
                slices = member.slices(group.size)
                kept[member.module] = sorted(int(p) for c in plan.keep[group.id] for p in slices[c])
    return kept


def refit_layer_(
    original: nn.Module, pruned: nn.Module, name: str, data: Iterable[Any], ridge: float = 0.0,
    kept_out: Sequence[int] | None = None,
) -> float:  # fmt: skip
    """Refit ``pruned``'s layer ``name`` to ``original``'s outputs on ``data`` (restricted to the output
    positions ``kept_out`` when the layer's outputs were pruned too); returns the relative residual."""
    layer = pruned.get_submodule(name)
    out_width = layer.out_features if isinstance(layer, nn.Linear) else getattr(layer, "out_channels", None)
    if not isinstance(layer, nn.Linear) and not (isinstance(layer, nn.Conv2d) and layer.groups == 1):
        raise ConfigError(
            f"refit works on Linear and ungrouped Conv2d layers; {name!r} is {type(layer).__name__}"
        )
    bias = layer.bias is not None
    gram = cross = None
    target_sq = 0.0
    for batch in data:
        x = batch[0] if isinstance(batch, list | tuple) else batch
        rows = _rows(layer, _capture(pruned, name, x, "in")).double()
        y = _targets(layer, _capture(original, name, x, "out")).double()
        if kept_out is not None:
            y = y[:, list(kept_out)]
        if y.shape[1] != out_width:
            raise ConfigError(
                f"{name!r} has {out_width} outputs but the original layer {y.shape[1]}: its outputs were "
                "pruned too; pass kept_out (netsculpt.gpp.kept_outputs(graph, plan) gives it)"
            )
        if bias:
            rows = torch.cat([rows, torch.ones(rows.shape[0], 1, dtype=rows.dtype)], 1)
        gram = rows.T @ rows if gram is None else gram + rows.T @ rows
        cross = rows.T @ y if cross is None else cross + rows.T @ y
        target_sq += float(y.pow(2).sum())
    if gram is None:
        raise ConfigError("refit got no calibration batches")
    if ridge > 0:
        gram = gram + ridge * gram.diagonal().mean() * torch.eye(gram.shape[0], dtype=gram.dtype)
    solution = torch.linalg.lstsq(gram, cross, driver="gelsd").solution  # (p [+1], out)
    weight = solution[:-1] if bias else solution
    with torch.no_grad():
        layer.weight.copy_(weight.T.reshape(layer.weight.shape).to(layer.weight.dtype))
        if bias:
            layer.bias.copy_(solution[-1].to(layer.bias.dtype))
    # residual from the normal equations: ||XW - Y||^2 = Y'Y - 2 W'X'Y + W'X'XW
    resid = target_sq - 2 * float((solution * cross).sum()) + float((solution * (gram @ solution)).sum())
    return max(0.0, resid) ** 0.5 / max(target_sq, 1e-30) ** 0.5


def changed_consumers(original: nn.Module, pruned: nn.Module) -> list[str]:
    """Layers of ``pruned`` with fewer inputs than the same-named layer of ``original`` (module order).

    Grouped and depthwise convs are left out: their inputs and outputs are pruned together, channel for
    channel, so a kept filter sees exactly the inputs it saw before and there is nothing to refit."""
    before = dict(original.named_modules())
    names = []
    for name, module in pruned.named_modules():
        old = before.get(name)
        if isinstance(module, nn.Conv2d) and module.groups > 1:
            continue
        if isinstance(module, nn.Conv2d | nn.Linear) and type(old) is type(module):
            width = module.in_features if isinstance(module, nn.Linear) else module.in_channels
            old_width = old.in_features if isinstance(old, nn.Linear) else old.in_channels
            if width < old_width:
                names.append(name)
    return names


def refit_consumers_(
    original: nn.Module, pruned: nn.Module, data: Iterable[Any], *, layers: list[str] | None = None,
    ridge: float = 0.0, max_batches: int | None = 8, kept_out: dict[str, list[int]] | None = None,
) -> dict[str, float]:  # fmt: skip
    """Refit every layer that lost inputs (or ``layers``) in place; returns name → relative residual.

    ``kept_out`` names the kept output positions of layers whose outputs were pruned as well."""
    batches = []
    for i, batch in enumerate(data):
        if max_batches is not None and i >= max_batches:
            break
        batches.append(batch)
    modes = module_modes(original) + module_modes(pruned)
    original.eval(), pruned.eval()
    try:
        names = layers if layers is not None else changed_consumers(original, pruned)
        kept_out = kept_out or {}
        return {
            name: refit_layer_(original, pruned, name, batches, ridge, kept_out.get(name))
            for name in track(names, "refit")
        }
    finally:
        restore_modes(modes)
