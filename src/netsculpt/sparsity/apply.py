"""Compute and attach masks for a whole model: one-shot, one step of a ramp, or one GaP partition."""

from __future__ import annotations

import torch
from torch import nn

from netsculpt.layer_kinds import out_in, stored
from netsculpt.sparsity.config import SparsityConfig
from netsculpt.sparsity.distribution import erk_sparsities
from netsculpt.sparsity.masks import dense_weight, is_masked, mask_of, set_mask_, target_layers
from netsculpt.sparsity.patterns import check_fits, global_masks, layer_mask


def check_model(model: nn.Module, config: SparsityConfig) -> dict[str, nn.Module]:
    """The selected layers, each checked against the pattern before any training starts."""
    layers = target_layers(model, config.filter_fn)
    for name, module in layers.items():
        check_fits(config.parsed, tuple(out_in(module, dense_weight(module)).shape), name)
    return layers


def _current(module: nn.Module) -> torch.Tensor:
    """The layer's current weight as ``(out, in, ...)``: N:M groups and blocks run along its inputs, which
    a Hugging Face ``Conv1D`` stores as rows, not columns."""
    weight = dense_weight(module).detach()
    return out_in(module, weight * mask_of(module) if is_masked(module) else weight)


def mask_layers_(
    model: nn.Module, config: SparsityConfig, sparsity: float, names: list[str] | None = None
) -> dict[str, nn.Module]:
    """Mask ``names`` (default: every selected layer) by magnitude of their current weights at ``sparsity``.

    Pruned weights score 0, so on a ramp a weight once pruned stays pruned.
    """
    layers = check_model(model, config)
    chosen = {n: layers[n] for n in (names if names is not None else list(layers))}
    if config.effective_scope == "global":
        masks = global_masks({n: _current(m) for n, m in chosen.items()}, sparsity)
    elif config.effective_scope == "erk":
        # split over *all* selected layers, so a GaP partition gets the same sparsities as the whole model
        per_layer = erk_sparsities({n: tuple(_current(m).shape) for n, m in layers.items()}, sparsity)
        masks = {n: layer_mask(_current(m), config.parsed, per_layer[n], n) for n, m in chosen.items()}
    else:
        masks = {n: layer_mask(_current(m), config.parsed, sparsity, n) for n, m in chosen.items()}
    for name, module in chosen.items():
        set_mask_(module, stored(module, masks[name]).contiguous())
    return layers


def grow_dense_(model: nn.Module, names: list[str]) -> None:
    """Let ``names`` train dense: all-ones masks (pruned weights restart from zero)."""
    for name in names:
        module = model.get_submodule(name)
        set_mask_(module, torch.ones_like(dense_weight(module), dtype=torch.bool), zero_pruned=False)


def partitions(names: list[str], count: int) -> list[list[str]]:
    """``count`` contiguous groups of layers in model order (fewer when there are fewer layers)."""
    count = min(count, len(names))
    size, extra = divmod(len(names), count)
    out, start = [], 0
    for i in range(count):
        end = start + size + (1 if i < extra else 0)
        out.append(names[start:end])
        start = end
    return out
