"""``digits_detect`` and ``digits_seg``: detection and segmentation canvases made of real MNIST digits.

Each canvas is a seeded black square with 1-6 digits from the bundled ``mnist5k`` set pasted at sizes of
14-56 px, placed so that boxes overlap little (IoU <= 0.1 with every earlier box). A digit's box is the
bounding box of its *ink* (pixels above a quarter of full intensity after resizing), its mask those
pixels. Training canvases use only the 4,000 training digits of ``mnist5k``'s fixed split and test
canvases only its 1,000 test digits, so no test digit is ever seen in training, whatever the seeds.

Targets follow torchvision's detection convention: ``boxes`` as ``(x1, y1, x2, y2)`` floats, ``labels``
``1 + digit`` (0 is the background class), ``masks`` one ``uint8`` plane per digit. The segmentation
target is one ``int64`` map with 0 for background and ``1 + digit`` for ink.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from netsculpt.errors import DataError

INK = 0.25  # fraction of full intensity above which a resized pixel is ink (box and mask)
MAX_IOU = 0.1
TRIES = 50  # placements tried per digit before the canvas keeps fewer digits


@dataclass(frozen=True)
class CanvasSpec:
    """How canvases are drawn; the defaults are the benchmark's."""

    size: int = 128
    digits: tuple[int, int] = (1, 6)
    scale: tuple[int, int] = (14, 56)

    def validate(self) -> None:
        lo, hi = self.scale
        if not (1 <= self.digits[0] <= self.digits[1]) or not (4 <= lo <= hi <= self.size):
            raise DataError(
                f"canvas spec {self}: need 1 <= digits[0] <= digits[1] and 4 <= scale[0] <= scale[1] <= size"
            )


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    if boxes.size == 0:
        return np.zeros(0)
    x1, y1 = np.maximum(box[0], boxes[:, 0]), np.maximum(box[1], boxes[:, 1])
    x2, y2 = np.minimum(box[2], boxes[:, 2]), np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / (area + areas - inter)


def draw_canvas(
    digits: torch.Tensor, labels: torch.Tensor, rng: np.random.Generator, spec: CanvasSpec = CanvasSpec()
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One canvas ``(1, S, S)`` in [0, 1] and its target, from ``digits`` ``(N, 1, 28, 28)`` uint8."""
    spec.validate()
    canvas = torch.zeros(spec.size, spec.size)
    boxes: list[np.ndarray] = []
    classes: list[int] = []
    masks: list[torch.Tensor] = []
    for _ in range(int(rng.integers(spec.digits[0], spec.digits[1] + 1))):
        i = int(rng.integers(len(digits)))
        side = int(rng.integers(spec.scale[0], spec.scale[1] + 1))
        glyph = F.interpolate(digits[i : i + 1].float() / 255, size=(side, side), mode="bilinear")[0, 0]
        ink = glyph > INK
        if not ink.any():
            continue
        rows, cols = torch.nonzero(ink, as_tuple=True)
        for _ in range(TRIES):
            y, x = (int(v) for v in rng.integers(0, spec.size - side + 1, size=2))
            box = np.array([x + cols.min(), y + rows.min(), x + cols.max() + 1, y + rows.max() + 1], float)
            if (_iou(box, np.array(boxes).reshape(-1, 4)) <= MAX_IOU).all():
                break
        else:
            continue
        region = canvas[y : y + side, x : x + side]
        region.copy_(torch.maximum(region, glyph))
        mask = torch.zeros(spec.size, spec.size, dtype=torch.uint8)
        mask[y : y + side, x : x + side] = ink.to(torch.uint8)
        boxes.append(box)
        classes.append(int(labels[i]) + 1)
        masks.append(mask)
    target = {
        "boxes": torch.tensor(np.array(boxes).reshape(-1, 4), dtype=torch.float32),
        "labels": torch.tensor(classes, dtype=torch.int64),
        "masks": torch.stack(masks) if masks else torch.zeros(0, spec.size, spec.size, dtype=torch.uint8),
    }
    return canvas[None], target


def semantic_mask(target: dict[str, torch.Tensor]) -> torch.Tensor:
    """``(H, W)`` int64: 0 background, ``label`` where a digit's ink is (later digits on top)."""
    masks, labels = target["masks"], target["labels"]
    out = torch.zeros(masks.shape[-2:], dtype=torch.int64)
    for mask, label in zip(masks, labels):
        out[mask.bool()] = label
    return out


def _digits(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    from netsculpt.data.bundled import build_mnist5k

    raw = build_mnist5k()
    if split == "train":
        return raw.train_images, raw.train_labels
    if split == "test":
        return raw.test_images, raw.test_labels
    raise DataError(f"split must be 'train' or 'test', got {split!r}")


class DigitsCanvases(Dataset):
    """``n`` canvases of one split, canvas ``i`` drawn from seed ``(seed, i)``: any subset, any order,
    any worker gives the same canvas. ``task="detect"`` yields ``(image, target)`` as torchvision's
    detectors take them; ``task="seg"`` yields ``(image, (H, W) class map)``."""

    def __init__(
        self, split: str, n: int, *, task: str = "detect", seed: int = 0, spec: CanvasSpec = CanvasSpec()
    ) -> None:
        if task not in ("detect", "seg"):
            raise DataError(f"task must be 'detect' or 'seg', got {task!r}")
        if n < 1:
            raise DataError(f"need at least one canvas, got n={n}")
        spec.validate()
        self.digits, self.labels = _digits(split)
        self.split, self.n, self.task, self.seed, self.spec = split, n, task, seed, spec

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, object]:
        if not 0 <= i < self.n:
            raise IndexError(i)
        split_key = 0 if self.split == "train" else 1
        rng = np.random.default_rng([self.seed, split_key, i])
        image, target = draw_canvas(self.digits, self.labels, rng, self.spec)
        return (image, target) if self.task == "detect" else (image, semantic_mask(target))


def detection_collate(batch: list[tuple[torch.Tensor, object]]) -> tuple[list[torch.Tensor], list[object]]:
    """Images and targets as lists (a detector's input is a list of images of any size)."""
    images, targets = zip(*batch) if batch else ((), ())
    return list(images), list(targets)


def _count(split: str, n: int | None) -> int:
    return n if n is not None else (4000 if split == "train" else 1000)


def digits_detect(split: str = "train", n: int | None = None, *, seed: int = 0) -> DigitsCanvases:
    """``digits_detect``: ``n`` canvases (default: as many as the split has digits) for detection."""
    return DigitsCanvases(split, _count(split, n), task="detect", seed=seed)


def digits_seg(split: str = "train", n: int | None = None, *, seed: int = 0) -> DigitsCanvases:
    """``digits_seg``: the same canvases with a per-pixel class map, for semantic segmentation."""
    return DigitsCanvases(split, _count(split, n), task="seg", seed=seed)
