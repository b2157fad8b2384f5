"""Masks on a model during sparse training, as a ``torch.nn.utils.parametrize`` parametrization.

The layer's trainable weight becomes ``parametrizations.weight.original`` and the mask a buffer of the
parametrization (``parametrizations.weight.0.mask``), so both are in the state dict and in every training
checkpoint; ``weight`` is the masked original, recomputed on *every* read. That matters: attention layers
(``nn.MultiheadAttention``'s ``out_proj``, torchvision Swin's ``qkv`` / ``proj``) hand a Linear's
``.weight`` to a functional call without running the Linear's forward, so a mask refreshed by a forward
hook (``torch.nn.utils.prune``, the first design) left them a stale, freed tensor. :func:`remove_masks_`
bakes the zeros in and leaves a plain module: nothing of netsculpt stays in the model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from netsculpt.errors import ConfigError
from netsculpt.layer_kinds import is_weight_layer
from netsculpt.unparametrize import drop_weight_parametrization_

FilterFn = Callable[[nn.Module, str], bool]


def default_filter(module: nn.Module, name: str) -> bool:
    """Every convolution and linear layer (Hugging Face's transposed ``Conv1D`` too)."""
    return is_weight_layer(module)


def target_layers(model: nn.Module, filter_fn: FilterFn | None = None) -> dict[str, nn.Module]:
    """The layers to sparsify, by name, in model order."""
    keep = filter_fn or default_filter
    layers = {n: m for n, m in model.named_modules() if is_weight_layer(m) and keep(m, n)}
    if not layers:
        raise ConfigError(
            f"{type(model).__name__} has no convolution or linear layer that the filter selects; "
            "nothing to sparsify"
        )
    return layers


class _Mask(nn.Module):
    """``weight = original`` where the mask is 1, ``+0.0`` where it is 0; the mask is a buffer, so
    checkpoints carry it."""

    def __init__(self, mask: Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", mask)

    def forward(self, original: Tensor) -> Tensor:
        # masked_fill, not a product: a pruned negative weight times 0 is -0.0, which the sparse file
        # format stores as +0.0 (zeros are not stored), so the reloaded weight would differ in its bits
        return original.masked_fill(self.mask == 0, 0.0)


def _mask_module(module: nn.Module) -> _Mask | None:
    if not parametrize.is_parametrized(module, "weight"):
        return None
    found = [p for p in module.parametrizations.weight if isinstance(p, _Mask)]
    return found[0] if found else None


def skip_filter(model: nn.Module, skip: list[str] | tuple[str, ...], option: str) -> FilterFn | None:
    """``filter_fn`` leaving the named modules dense; a container (a Sequential, a block) leaves every
    layer inside it dense. A name the model lacks is refused (``option`` names the setting), not ignored."""
    if not skip:
        return None
    names = {name for name, _ in model.named_modules()}
    unknown = [name for name in skip if name not in names]
    if unknown:
        raise ConfigError(
            f"{option} {unknown[0]!r}: the model has no such layer; layers are named as in "
            "`netsculpt analyze MODEL`"
        )
    prefixes = tuple(f"{name}." for name in skip)
    return lambda module, name: name not in skip and not name.startswith(prefixes)


def is_masked(module: nn.Module) -> bool:
    return _mask_module(module) is not None


def mask_of(module: nn.Module) -> Tensor:
    """The mask of a masked layer (raises on an unmasked one)."""
    found = _mask_module(module)
    if found is None:
        raise ConfigError(f"{type(module).__name__} carries no sparsity mask")
    return found.mask


def dense_weight(module: nn.Module) -> Tensor:
    """The trainable weight behind a mask, or the weight of an unmasked layer."""
    return module.parametrizations.weight.original if is_masked(module) else module.weight


def set_mask_(module: nn.Module, mask: Tensor, *, zero_pruned: bool = True) -> None:
    """Attach or replace ``module``'s mask. ``zero_pruned`` zeroes pruned weights at their source too,
    so a later grow phase starts them from zero rather than from stale values."""
    mask = mask.to(device=dense_weight(module).device, dtype=dense_weight(module).dtype)
    if is_masked(module):
        mask_of(module).copy_(mask)
    elif parametrize.is_parametrized(module):
        raise ConfigError(
            f"this {type(module).__name__} is already parametrized ({', '.join(module.parametrizations)}: "
            "weight norm, spectral norm or similar); remove that parametrization before sparsifying"
        )
    else:
        parametrize.register_parametrization(module, "weight", _Mask(mask))
    if zero_pruned:
        with torch.no_grad():
            dense_weight(module).masked_fill_(mask == 0, 0.0)


def iter_masks(model: nn.Module) -> Iterator[tuple[str, Tensor]]:
    for name, module in model.named_modules():
        if is_masked(module):
            yield name, mask_of(module)


def remove_masks_(model: nn.Module) -> nn.Module:
    """Bake every mask into its weight and remove the parametrization and its buffer, leaving the plain
    layer with ``weight`` back before ``bias`` (:mod:`netsculpt.unparametrize`)."""
    for _, module in list(model.named_modules()):
        if is_masked(module):
            drop_weight_parametrization_(module, bake=True)
    return model


def sparsity_of(model: nn.Module, layers: dict[str, nn.Module] | None = None) -> dict[str, float]:
    """Fraction of zero weights per layer (masked or already baked)."""
    out = {}
    for name, module in (layers or target_layers(model)).items():
        weight = module.weight.detach()
        out[name] = float((weight == 0).sum()) / max(weight.numel(), 1)
    return out
