"""Is a map faithful? The deletion test: hide the pixels it ranks highest and watch the class score fall.

For each image, the ``fraction`` of pixels a map ranks highest are set to the image's minimum (the
background, for digits), and the drop of the explained class's probability is measured. A map that
points at the evidence causes a larger drop than a random map hiding as many pixels; the ratio of the
two is printed beside each map (a control, so "the map looks plausible" is not the only evidence).
"""

from __future__ import annotations

import torch
from torch import nn

from netsculpt.explain.capture import restored


def _probs(model: nn.Module, images: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    with restored(model), torch.no_grad():
        return model(images).double().softmax(1).gather(1, classes[:, None])[:, 0]


def hide_top(images: torch.Tensor, maps: torch.Tensor, fraction: float) -> torch.Tensor:
    """``images`` with the top ``fraction`` of pixels of each map (N, H, W) set to the image's minimum."""
    n, _, h, w = images.shape
    k = max(1, round(fraction * h * w))
    top = maps.reshape(n, -1).topk(k, dim=1).indices
    hide = torch.zeros(n, h * w, dtype=torch.bool)
    hide.scatter_(1, top, True)
    fill = images.flatten(1).amin(1)[:, None, None, None].expand_as(images)
    return torch.where(hide.reshape(n, 1, h, w).expand_as(images), fill, images)


def deletion_drop(
    model: nn.Module, images: torch.Tensor, classes: torch.Tensor, maps: torch.Tensor, fraction: float = 0.1
) -> float:
    """Mean drop of the class probability after hiding the map's top ``fraction`` of pixels."""
    before = _probs(model, images, classes)
    after = _probs(model, hide_top(images, maps.to(images.dtype), fraction), classes)
    return float((before - after).mean())


def random_drop(
    model: nn.Module, images: torch.Tensor, classes: torch.Tensor, fraction: float = 0.1, repeats: int = 5
) -> float:
    """The same with random maps (mean over ``repeats`` draws): the control."""
    gen = torch.Generator().manual_seed(0)
    n, _, h, w = images.shape
    drops = [
        deletion_drop(model, images, classes, torch.rand(n, h, w, generator=gen), fraction)
        for _ in range(repeats)
    ]
    return sum(drops) / len(drops)
