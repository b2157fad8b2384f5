"""Masks on a model during sparse training, as buffers of ``torch.nn.utils.prune``.

``torch.nn.utils.prune.custom_from_mask`` keeps ``weight_orig`` (the parameter) and ``weight_mask`` (a
buffer, so it is in the state dict and in every training checkpoint), and recomputes ``weight`` before
each forward. :func:`remove_masks_` bakes the zeros in and leaves a plain module: nothing of netsculpt
(and nothing of the prune utility) stays in the model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn
from torch.nn.utils import prune

from netsculpt.errors import ConfigError

SPARSIFIABLE = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
FilterFn = Callable[[nn.Module, str], bool]


def default_filter(module: nn.Module, name: str) -> bool:
    """Every convolution and linear layer."""
    return isinstance(module, SPARSIFIABLE)


def target_layers(model: nn.Module, filter_fn: FilterFn | None = None) -> dict[str, nn.Module]:
    """The layers to sparsify, by name, in model order."""
    keep = filter_fn or default_filter
    layers = {n: m for n, m in model.named_modules() if isinstance(m, SPARSIFIABLE) and keep(m, n)}
    if not layers:
        raise ConfigError(
            f"{type(model).__name__} has no convolution or linear layer that the filter selects; "
            "nothing to sparsify"
        )
    return layers


def is_masked(module: nn.Module) -> bool:
    return isinstance(getattr(module, "weight_mask", None), Tensor) and hasattr(module, "weight_orig")


def dense_weight(module: nn.Module) -> Tensor:
    """The trainable weight behind a mask (``weight_orig``), or the weight of an unmasked layer."""
    return module.weight_orig if is_masked(module) else module.weight


def set_mask_(module: nn.Module, mask: Tensor, *, zero_pruned: bool = True) -> None:
    """Attach or replace ``module``'s mask. ``zero_pruned`` zeroes pruned weights at their source too,
    so a later grow phase starts them from zero rather than from stale values."""
    mask = mask.to(device=dense_weight(module).device, dtype=dense_weight(module).dtype)
    if is_masked(module):
        module.weight_mask.copy_(mask)
    else:
        prune.custom_from_mask(module, "weight", mask)
    if zero_pruned:
        with torch.no_grad():
            module.weight_orig.mul_(mask)
    module.weight = module.weight_orig * module.weight_mask  # keep the attribute current outside forward


def iter_masks(model: nn.Module) -> Iterator[tuple[str, Tensor]]:
    for name, module in model.named_modules():
        if is_masked(module):
            yield name, module.weight_mask


def remove_masks_(model: nn.Module) -> nn.Module:
    """Bake every mask into its weight and remove the hooks, buffers and ``weight_orig`` parameters.

    ``weight`` goes back to its place before ``bias`` (the prune utility re-registers it last): the
    state dict keeps the original model's order, which the packed file format's layout hash relies on.
    """
    for _, module in model.named_modules():
        if is_masked(module):
            prune.remove(module, "weight")
            params = module._parameters
            module._parameters = type(params)(sorted(params.items(), key=lambda item: item[0] != "weight"))
    return model


def sparsity_of(model: nn.Module, layers: dict[str, nn.Module] | None = None) -> dict[str, float]:
    """Fraction of zero weights per layer (masked or already baked)."""
    out = {}
    for name, module in (layers or target_layers(model)).items():
        weight = module.weight.detach()
        out[name] = float((weight == 0).sum()) / max(weight.numel(), 1)
    return out
