"""CHIP visual interpretation (Cui, Wang & Wang, "CHIP: Channel-wise disentangled interpretation of deep
convolutional neural networks", IEEE TNNLS 31(10), 2020): class-discriminative channel importance learnt
by perturbing the trained network, then per-image maps, refined across layers.

Network perturbation: for a layer with C channels, draw M random binary masks ``z`` (each channel kept
with probability ``keep``), run images of class k through the network with the layer's channels
multiplied by ``z`` and record the mean probability of class k. A non-negative Lasso
``p_k(z) ~ b + beta_k . z`` then gives a sparse importance ``beta_k`` (C,): the few channels whose
presence the class needs. The network itself is never retrained. An image's map for class k at that
layer is ``relu(sum_c beta_kc A_c)``, upsampled to the input; the *refined* map is the geometric mean
of the normalised maps of several layers: the deep layer makes it class-specific, the shallow one sharp.

The Lasso strength is a fraction ``sparsity`` of the smallest value that zeroes every coefficient, so it
means the same for any layer width and score scale.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from netsculpt.errors import ConfigError
from netsculpt.explain.capture import forward_with_maps, restored
from netsculpt.explain.gradcam import normalise, upsample
from netsculpt.progress import progress_bar

INPUT_VALUES_PER_PASS = 1 << 24  # input values per forward pass: ~110 ImageNet images, all 64 masks of digits


@dataclass
class Perturbation:
    """How the network is perturbed: ``masks`` random channel masks, each channel kept with ``keep``."""

    masks: int = 256
    keep: float = 0.5
    sparsity: float = 0.05
    batch: int = 64  # at most this many masks per forward pass (each one over every image of the class)
    seed: int = 0


def channel_width(model: nn.Module, images: torch.Tensor, layer: str) -> int:
    with restored(model), torch.no_grad():
        _, store = forward_with_maps(model, images[:1], [layer])
    return int(store[layer].shape[1])


def masks_per_pass(images: torch.Tensor, settings: Perturbation) -> int:
    """Masks run in one forward pass over all of ``images`` (a class's calibration images)."""
    return max(1, min(settings.batch, INPUT_VALUES_PER_PASS // max(images[0].numel() * images.shape[0], 1)))


def perturbation_responses(
    model: nn.Module,
    images: torch.Tensor,
    layer: str,
    cls: int,
    settings: Perturbation,
    tick: Callable[[], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The M masks (M, C) and the mean class-``cls`` probability of ``images`` under each (M,);
    ``tick()`` after each forward pass (a progress bar)."""
    if not 0 < settings.keep < 1:
        raise ConfigError(f"perturbation keep probability must be in (0, 1), got {settings.keep}")
    width = channel_width(model, images, layer)
    gen = torch.Generator().manual_seed(settings.seed)
    masks = (torch.rand(settings.masks, width, generator=gen) < settings.keep).float()
    n = images.shape[0]
    step = masks_per_pass(images, settings)
    out = torch.empty(settings.masks, dtype=torch.float64)
    with restored(model), torch.no_grad():
        for lo in range(0, settings.masks, step):
            z = masks[lo : lo + step]
            batch = images.repeat(z.shape[0], 1, 1, 1)  # mask-major: rows [m*n, (m+1)*n) share mask m
            scale = z.repeat_interleave(n, dim=0)
            logits, _ = forward_with_maps(model, batch, [layer], scales={layer: scale})
            prob = logits.detach().double().softmax(1)[:, cls].reshape(z.shape[0], n).mean(1)
            out[lo : lo + z.shape[0]] = prob
            if tick is not None:
                tick()
    return masks.numpy().astype(np.float64), out.numpy()


def sparse_importance(masks: np.ndarray, responses: np.ndarray, sparsity: float) -> np.ndarray:
    """Non-negative Lasso coefficients of ``responses ~ masks`` at ``sparsity`` x the all-zero strength."""
    from sklearn.linear_model import Lasso

    centred = responses - responses.mean()
    zc = masks - masks.mean(0)
    alpha_max = float(np.abs(zc.T @ centred).max()) / len(responses)
    if alpha_max <= 0:
        return np.zeros(masks.shape[1])
    lasso = Lasso(alpha=max(sparsity, 1e-6) * alpha_max, positive=True, max_iter=20000, tol=1e-8)
    lasso.fit(masks, responses)
    return np.asarray(lasso.coef_, dtype=np.float64)


def learn_importance(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    layer: str,
    classes: Sequence[int],
    settings: Perturbation | None = None,
    calib_option: str = "--calib-images",
) -> dict[int, np.ndarray]:
    """``beta_k`` (C,) for every class in ``classes``, from the ``images`` of that class (training data).
    ``calib_option`` is where the caller sets how many images there are (a recipe's field), for the error.

    The progress bar advances per forward pass (``masks_per_pass`` masks over a class's images), not per
    class: on ResNet-50 one class takes minutes, which a per-class bar showed as a bar standing still."""
    settings = settings or Perturbation()
    mine = {int(cls): images[labels == cls] for cls in classes}
    for cls, of_class in mine.items():
        if of_class.shape[0] == 0:
            raise ConfigError(
                f"no calibration image of class {cls} to learn its channel importance; use more images "
                f"({calib_option}) or explain other classes"
            )
    passes = sum(math.ceil(settings.masks / masks_per_pass(x, settings)) for x in mine.values())
    out = {}
    with progress_bar() as bar:
        task = bar.add_task(f"CHIP importance of {layer}", total=passes, status="")
        for i, (cls, of_class) in enumerate(mine.items()):
            bar.update(task, status=f"class {cls} ({i + 1}/{len(mine)})")
            masks, responses = perturbation_responses(
                model, of_class, layer, cls, settings, tick=lambda: bar.advance(task)
            )
            out[cls] = sparse_importance(masks, responses, settings.sparsity)
    return out


def chip_maps(
    model: nn.Module, images: torch.Tensor, layer: str, importance: torch.Tensor | np.ndarray
) -> tuple[torch.Tensor, torch.Tensor]:
    """Maps (N, H, W) at input size and raw (N, h, w): ``relu(sum_c beta_c A_c)``, ``importance`` (C,)
    for all images or (N, C) one row per image."""
    with restored(model), torch.no_grad():
        _, store = forward_with_maps(model, images, [layer])
    a = store[layer].detach().double()
    beta = torch.as_tensor(np.asarray(importance), dtype=torch.float64)
    if beta.dim() == 1:
        beta = beta.expand(a.shape[0], -1)
    if beta.shape != a.shape[:2]:
        raise ConfigError(
            f"importance of shape {tuple(beta.shape)} does not fit layer {layer!r} {tuple(a.shape)}"
        )
    raw = (beta[:, :, None, None] * a).sum(1).clamp_min(0)
    return upsample(raw, images.shape[-2:]), raw


def refine(maps: Sequence[torch.Tensor]) -> torch.Tensor:
    """Geometric mean of per-layer maps (each (N, H, W), normalised first): zero wherever any layer is."""
    if not maps:
        raise ConfigError("refining needs at least one layer's maps")
    logs = torch.stack([normalise(m).clamp_min(0).add(1e-12).log() for m in maps])
    return normalise(logs.mean(0).exp())
