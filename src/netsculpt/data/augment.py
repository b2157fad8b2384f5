"""Light, label-safe training augmentation: random shifts (random crop with padding).

Only shifts, never flips or rotations: a flipped digit can change class ("2" vs "5"-like shapes), and one
rule that is safe for every registered dataset beats a per-dataset menu. The uncovered border is filled with
what a black (0) raw pixel becomes after normalisation, as padding-then-cropping a raw image would do.

Randomness comes from the wrapper's own ``torch.Generator``, seeded from the loader seed, and is re-seeded
per DataLoader worker from the worker's seed, so runs with the same seed see the same augmented batches.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset, get_worker_info

from netsculpt.data.prepare import ImageDataset


def default_padding(image_size: tuple[int, int]) -> int:
    """Shift range in pixels: 1/8 of the shorter side (4 for 32x32, the usual CIFAR choice; 3 for 28x28)."""
    return max(1, min(image_size) // 8)


class RandomShift(Dataset[tuple[torch.Tensor, int]]):
    """Wraps an :class:`ImageDataset` and shifts each training image by up to ``padding`` pixels."""

    def __init__(self, dataset: ImageDataset, padding: int | None = None, seed: int = 0) -> None:
        self.dataset = dataset
        self.info = dataset.info
        self.classes = dataset.classes
        self.padding = default_padding(dataset.info.image_size) if padding is None else int(padding)
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)
        self._worker: int | None = None
        mean = torch.tensor(dataset.info.mean).view(-1, 1, 1)
        std = torch.tensor(dataset.info.std).view(-1, 1, 1)
        self.fill = -mean / std  # normalised value of a raw 0 pixel, per channel

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        worker = get_worker_info()
        if worker is not None and self._worker != worker.id:
            # Each worker holds a copy of this object; give each its own reproducible stream.
            self.generator.manual_seed(worker.seed)
            self._worker = worker.id
        image, label = self.dataset[index]
        p = self.padding
        if p == 0:
            return image, label
        dy, dx = (int(v) for v in torch.randint(-p, p + 1, (2,), generator=self.generator))
        return shift(image, dy, dx, self.fill), label


def shift(image: torch.Tensor, dy: int, dx: int, fill: torch.Tensor) -> torch.Tensor:
    """``image`` (C x H x W) moved down by ``dy`` and right by ``dx`` pixels, the border set to ``fill``."""
    _, h, w = image.shape
    out = fill.expand_as(image).clone()
    src_y, dst_y = slice(max(0, -dy), max(0, min(h, h - dy))), slice(max(0, dy), max(0, min(h, h + dy)))
    src_x, dst_x = slice(max(0, -dx), max(0, min(w, w - dx))), slice(max(0, dx), max(0, min(w, w + dx)))
    out[:, dst_y, dst_x] = image[:, src_y, src_x]
    return out
