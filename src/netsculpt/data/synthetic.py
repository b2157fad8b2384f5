"""``synthetic``: generated, learnable images for tests and smoke runs (no files, any shape).

Each class has a fixed smooth pattern (a random 4x4 grid per channel, bilinearly upsampled to
``image_size``); a sample is its class pattern at a random contrast (0.75..1.25 around the pattern mean) plus
Gaussian pixel noise of std ``noise``. Patterns differ by whole regions while noise is per pixel, so a small
CNN (or even a nearest-class-mean classifier) is far above chance, and raising ``noise`` makes it harder.
The data depends only on the options (``data_seed`` picks another draw), never on global RNG state or on the
``seed`` passed to :func:`load_dataset`.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from netsculpt.data.base import DatasetInfo, RawSplits, register_dataset
from netsculpt.data.prepare import as_size
from netsculpt.errors import DataError

GRID = 4


def _check(num_classes: int, in_channels: int, train_size: int, test_size: int, noise: float) -> None:
    for name, value, low in (("num_classes", num_classes, 2), ("in_channels", in_channels, 1)):
        if not isinstance(value, int) or value < low:
            raise DataError(f"synthetic: {name} must be an int >= {low}, got {value!r}")
    for name, value in (("train_size", train_size), ("test_size", test_size)):
        if not isinstance(value, int) or value < 1:
            raise DataError(f"synthetic: {name} must be a positive int, got {value!r}")
    if not noise >= 0:
        raise DataError(f"synthetic: noise must be >= 0, got {noise!r}")


def _patterns(num_classes: int, in_channels: int, size: tuple[int, int], data_seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(data_seed)
    grid = torch.rand(num_classes, in_channels, GRID, GRID, generator=generator)
    return F.interpolate(grid, size=size, mode="bilinear", align_corners=True)


def synthetic_info(
    *,
    root: Path | None = None,
    num_classes: int = 10,
    image_size: int | tuple[int, int] = 32,
    in_channels: int = 3,
    train_size: int = 1000,
    test_size: int = 200,
    noise: float = 0.3,
    data_seed: int = 0,
) -> DatasetInfo:
    """Info without generating samples: mean/std follow from the patterns and the noise level."""
    _check(num_classes, in_channels, train_size, test_size, noise)
    size = as_size(image_size)
    assert size is not None
    patterns = _patterns(num_classes, in_channels, size, data_seed).transpose(0, 1).reshape(in_channels, -1)
    mean = patterns.mean(dim=1)
    # Contrast c ~ U(0.75, 1.25) scales deviations from each pattern's mean, E[c^2] = 1 + 0.5^2 / 12; applying
    # the gain to the whole pattern variance overstates the std by at most ~1%, harmless for normalising.
    contrast_gain = 1.0 + 0.25 / 12.0
    var = contrast_gain * patterns.var(dim=1, unbiased=False) + noise**2
    std = var.clamp_min(1e-6).sqrt()
    return DatasetInfo(
        "synthetic", num_classes, in_channels, size, tuple(map(float, mean)), tuple(map(float, std))
    )


def _draw(
    patterns: torch.Tensor, count: int, noise: float, generator: torch.Generator
) -> tuple[torch.Tensor, ...]:
    num_classes = patterns.shape[0]
    labels = (torch.arange(count) % num_classes)[torch.randperm(count, generator=generator)]
    base = patterns[labels]
    center = base.mean(dim=(2, 3), keepdim=True)
    contrast = 0.75 + 0.5 * torch.rand(count, 1, 1, 1, generator=generator)
    images = center + contrast * (base - center) + noise * torch.randn(base.shape, generator=generator)
    return images, labels


@register_dataset("synthetic", info=synthetic_info)
def build_synthetic(
    *,
    root: Path | None = None,
    download: bool = False,
    num_classes: int = 10,
    image_size: int | tuple[int, int] = 32,
    in_channels: int = 3,
    train_size: int = 1000,
    test_size: int = 200,
    noise: float = 0.3,
    data_seed: int = 0,
) -> RawSplits:
    """Balanced train/test splits of generated class patterns (see the module docstring)."""
    info = synthetic_info(
        num_classes=num_classes,
        image_size=image_size,
        in_channels=in_channels,
        train_size=train_size,
        test_size=test_size,
        noise=noise,
        data_seed=data_seed,
    )
    patterns = _patterns(num_classes, in_channels, info.image_size, data_seed)
    train = _draw(patterns, train_size, noise, torch.Generator().manual_seed(data_seed + 1))
    test = _draw(patterns, test_size, noise, torch.Generator().manual_seed(data_seed + 2))
    classes = tuple(f"class_{k}" for k in range(num_classes))
    return RawSplits(*train, *test, info=info, classes=classes)
