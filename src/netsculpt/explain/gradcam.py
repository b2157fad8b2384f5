"""Grad-CAM (Selvaraju et al., ICCV 2017): where in the image a layer's channels vote for a class.

For a layer's maps ``A`` (N, C, h, w) and a class score ``y`` (the logit, before softmax), each channel
gets the weight ``alpha_c = mean_{ij} dy / dA_cij`` and the map is ``relu(sum_c alpha_c A_c)``, upsampled
bilinearly to the input size. ``contributions`` keeps the per-channel terms ``alpha_c * A_c`` summed over
space, so a report can say which channels (kept or removed by pruning) carried the evidence.

Written here rather than taken from a package: it is thirty lines on top of :mod:`netsculpt.explain.capture`
(hooks removed afterwards, no ``.grad`` left in the model), and the tests pin it on a network whose
answer is known.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from netsculpt.adder.layer import exact_input_gradients
from netsculpt.errors import ConfigError
from netsculpt.explain.capture import forward_with_maps, restored


@dataclass
class ClassMaps:
    """Maps of one layer for N images: ``maps`` (N, H, W) at input size, ``raw`` (N, h, w) at the layer's
    size, ``channel_weights`` (N, C) and ``contributions`` (N, C); ``classes`` the class explained per
    image and ``predicted`` the model's own prediction."""

    layer: str
    maps: torch.Tensor
    raw: torch.Tensor
    channel_weights: torch.Tensor
    contributions: torch.Tensor
    classes: torch.Tensor
    predicted: torch.Tensor


def target_classes(logits: torch.Tensor, target: int | Sequence[int] | torch.Tensor | None) -> torch.Tensor:
    """The class to explain per image: the prediction (None), one class for all, or one per image."""
    n, k = logits.shape
    if target is None:
        return logits.argmax(1)
    t = torch.as_tensor(target, dtype=torch.long).reshape(-1)
    if t.numel() == 1:
        t = t.expand(n)
    if t.numel() != n:
        raise ConfigError(f"got {t.numel()} target classes for {n} images; give one, or one per image")
    if bool((t < 0).any()) or bool((t >= k).any()):
        raise ConfigError(f"target class {t.tolist()} out of range: the model has {k} classes (0..{k - 1})")
    return t


def upsample(raw: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """(N, h, w) -> (N, H, W), bilinear (align_corners=False, as the layer's receptive fields are centred)."""
    return F.interpolate(raw[:, None], size=tuple(size), mode="bilinear", align_corners=False)[:, 0]


def grad_cam(
    model: nn.Module,
    images: torch.Tensor,
    layer: str,
    target: int | Sequence[int] | torch.Tensor | None = None,
    channels: torch.Tensor | None = None,
) -> ClassMaps:
    """Grad-CAM of ``layer`` for ``images`` (N, C, H, W); ``target`` as in :func:`target_classes`.

    ``channels`` (bool, (C,)) restricts the sum to those channels: the map the kept (or the removed)
    channels of a pruning would draw on their own, all else in the network unchanged.
    """
    # enable_grad: also inside torch.no_grad() (eval scripts); adder layers give their true gradient,
    # not AdderNet's HardTanh training surrogate (a cosine of 0.83 between the two maps' weights)
    with restored(model), torch.enable_grad(), exact_input_gradients(model):
        logits, store = forward_with_maps(model, images, [layer])
        maps = store[layer]
        classes = target_classes(logits.detach(), target)
        score = logits.gather(1, classes[:, None]).sum()
        (grad,) = torch.autograd.grad(score, maps)
    a = maps.detach().double()
    weights = grad.detach().double().mean(dim=(2, 3))  # (N, C)
    if channels is not None:
        channels = torch.as_tensor(channels, dtype=torch.bool)
        if channels.shape != (a.shape[1],):
            raise ConfigError(f"channel selection has shape {tuple(channels.shape)}; layer has {a.shape[1]}")
        weights = weights * channels.to(weights)
    terms = weights[:, :, None, None] * a
    raw = terms.sum(1).clamp_min(0)
    return ClassMaps(
        layer=layer,
        maps=upsample(raw, images.shape[-2:]),
        raw=raw,
        channel_weights=weights,
        contributions=terms.sum(dim=(2, 3)),
        classes=classes,
        predicted=logits.detach().argmax(1),
    )


def normalise(maps: torch.Tensor) -> torch.Tensor:
    """Each map scaled to [0, 1] by its own maximum (an all-zero map stays zero): for display."""
    peak = maps.flatten(1).amax(1).clamp_min(1e-12)
    return maps / peak[:, None, None]


def peak_location(maps: torch.Tensor) -> list[tuple[int, int]]:
    """(row, column) of each map's maximum."""
    w = maps.shape[-1]
    flat = maps.flatten(1).argmax(1)
    return [(int(i) // w, int(i) % w) for i in flat]
