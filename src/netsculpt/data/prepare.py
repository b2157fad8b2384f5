"""Turn raw pixels into model-ready tensors: resize, channel conversion and normalisation.

The work is done once, up front, for the whole split (small datasets then serve items by indexing a tensor).
Only when the prepared float tensor would exceed :data:`IN_MEMORY_MAX_BYTES` (e.g. CIFAR-10 resized to
224 x 224 for an ImageNet model) are the compact raw pixels kept and each item prepared when it is read; both
paths run the same :class:`ImageTransform`, so they give identical values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from netsculpt.data.base import DatasetInfo
from netsculpt.errors import DataError

IN_MEMORY_MAX_BYTES = 2 * 1024**3
"""Above this size a prepared split is not materialised; items are prepared on access instead."""

LUMA = (0.299, 0.587, 0.114)
"""ITU-R BT.601 weights used to turn RGB into one grey channel."""

_CHUNK = 1024


def as_size(resize: int | tuple[int, int] | list[int] | None) -> tuple[int, int] | None:
    """Normalise the ``resize`` option to ``(H, W)``; reject anything that is not one or two positive ints."""
    if resize is None:
        return None
    if isinstance(resize, int):
        size: tuple = (resize, resize)
    else:
        size = tuple(resize) if isinstance(resize, tuple | list) else ()
    if len(size) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size):
        raise DataError(f"resize must be a positive int or a pair (H, W) of positive ints, got {resize!r}")
    return (int(size[0]), int(size[1]))


def transformed_info(
    info: DatasetInfo, resize: int | tuple[int, int] | None = None, channels: int | None = None
) -> DatasetInfo:
    """The info a model sees after ``resize`` / ``channels`` are applied (mean/std follow the channels)."""
    size = as_size(resize) or info.image_size
    if channels is None or channels == info.in_channels:
        return replace(info, image_size=size)
    if not isinstance(channels, int) or isinstance(channels, bool) or channels < 1:
        raise DataError(f"channels must be a positive int, got {channels!r}")
    if info.in_channels == 1:
        return replace(
            info, image_size=size, in_channels=channels, mean=info.mean * channels, std=info.std * channels
        )
    if info.in_channels == 3 and channels == 1:
        # Grey is a weighted sum of the channels: its mean is exact; for std we assume strongly correlated
        # channels (true of natural images), where the std is the same weighted sum.
        mean = sum(w * m for w, m in zip(LUMA, info.mean))
        std = sum(w * s for w, s in zip(LUMA, info.std))
        return replace(info, image_size=size, in_channels=1, mean=(mean,), std=(std,))
    raise DataError(
        f"dataset {info.name!r} has {info.in_channels} channels; channels={channels} is not a conversion "
        "netsculpt knows (it can repeat 1 channel to any number, or turn 3 channels into 1 grey channel)"
    )


@dataclass(frozen=True)
class ImageTransform:
    """Raw ``N x C x H x W`` pixels (uint8 0..255 or float 0..1) → resized, converted, normalised float32."""

    source_channels: int
    size: tuple[int, int]
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
        if tuple(x.shape[-2:]) != self.size:
            x = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False, antialias=True)
        if self.channels != self.source_channels:
            if self.source_channels == 1:
                x = x.expand(-1, self.channels, -1, -1)
            else:
                x = (x * torch.tensor(LUMA).view(1, 3, 1, 1)).sum(dim=1, keepdim=True)
        mean = torch.tensor(self.mean).view(1, -1, 1, 1)
        std = torch.tensor(self.std).view(1, -1, 1, 1)
        return ((x - mean) / std).contiguous()


class ImageDataset(Dataset[tuple[torch.Tensor, int]]):
    """An in-memory image classification split: items are ``(C x H x W float tensor, int label)``.

    ``images`` are either already prepared (``transform is None``) or raw pixels that ``transform``
    prepares per item. ``info`` and ``classes`` travel with the data so models and reports can read them.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        info: DatasetInfo,
        classes: tuple[str, ...] | None = None,
        transform: ImageTransform | None = None,
    ) -> None:
        self.images = images
        self.labels = labels
        self.info = info
        self.classes = classes
        self.transform = transform

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.images[index]
        if self.transform is not None:
            image = self.transform(image.unsqueeze(0))[0]
        return image, int(self.labels[index])

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All prepared images and labels at once (for quick full-batch evaluation of small splits)."""
        if self.transform is None:
            return self.images, self.labels
        return torch.cat([self.transform(c) for c in self.images.split(_CHUNK)]), self.labels


def prepare_split(
    images: torch.Tensor,
    labels: torch.Tensor,
    info: DatasetInfo,
    *,
    resize: int | tuple[int, int] | None = None,
    channels: int | None = None,
    classes: tuple[str, ...] | None = None,
    max_bytes: int = IN_MEMORY_MAX_BYTES,
) -> ImageDataset:
    """Build one split: prepare every image up front when it fits in ``max_bytes``, else per item."""
    out = transformed_info(info, resize, channels)
    transform = ImageTransform(info.in_channels, out.image_size, out.in_channels, out.mean, out.std)
    prepared_bytes = len(images) * out.in_channels * math.prod(out.image_size) * 4
    if prepared_bytes > max_bytes:
        return ImageDataset(images, labels, out, classes, transform)
    with torch.no_grad():
        chunks = [transform(c) for c in images.split(_CHUNK)]
    empty = torch.empty(0, out.in_channels, *out.image_size)
    return ImageDataset(torch.cat(chunks) if chunks else empty, labels, out, classes)
