"""Horizontal flips for your own detection, keypoint and segmentation files (``data.options.flip``).

The digit canvases are never flipped: a mirrored digit is another shape (a "2" is not a "5"), which is why
the classification augmentation only shifts. People, cars and street scenes mirror safely, and a flip is
the augmentation ultralytics (``fliplr: 0.5``) and torchvision's detection references train with, so a
detector pruned and fine-tuned here can recover as it was first trained.

What moves with the image: boxes and crowd boxes (``x -> W - x``, the ends swapped), instance masks and
a segmentation map (mirrored), keypoints (``x -> W - x`` for labelled ones, then reordered by
``flip_idx`` so a left wrist stays a left wrist). A keypoint dataset without ``flip_idx`` is refused:
unswapped, every left joint would be trained as the right one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import Dataset, get_worker_info

from netsculpt.errors import DataError

SIDES = (("left_", "right_"), ("l_", "r_"))  # name prefixes; the same words as suffixes ("_left")


def _mate(name: str) -> str | None:
    """The other side's name of a sided keypoint name, or ``None``."""
    for a, b in SIDES:
        for x, y in ((a, b), (b, a)):
            if name.startswith(x):
                return y + name[len(x) :]
            if name.endswith("_" + x[:-1]):
                return name[: -len(x)] + "_" + y[:-1]
    return None


def mirrored_keypoints(names: Sequence[str]) -> tuple[int, ...] | None:
    """``flip_idx`` from keypoint names: ``left_X`` <-> ``right_X`` (also ``l_``/``r_`` and ``X_left``
    forms), every other keypoint maps to itself; ``None`` when no pair is found (nothing to derive it
    from). COCO's 17 person keypoints give the order ultralytics' coco-pose.yaml lists."""
    lowered = [n.lower() for n in names]
    index = {n: i for i, n in enumerate(lowered)}
    mates = [index.get(_mate(n) or "", i) for i, n in enumerate(lowered)]
    return tuple(mates) if any(m != i for i, m in enumerate(mates)) else None


def flip_target(target: Any, width: int, flip_idx: Sequence[int] | None) -> Any:
    """``target`` as it is for the image mirrored left-right (``width`` pixels wide)."""
    if isinstance(target, torch.Tensor):  # a segmentation map (H, W)
        return target.flip(-1)
    out = dict(target)
    for key in ("boxes", "crowd_boxes"):
        if key in out and len(out[key]):
            boxes = out[key].clone()
            boxes[:, [0, 2]] = width - out[key][:, [2, 0]]
            out[key] = boxes
    if "masks" in out:
        out["masks"] = out["masks"].flip(-1)
    if "keypoints" in out and out["keypoints"].shape[0]:
        points = out["keypoints"].clone()
        labelled = (
            points[..., 2] > 0 if points.shape[-1] == 3 else torch.ones_like(points[..., 0], dtype=bool)
        )
        points[..., 0] = torch.where(labelled, width - points[..., 0], points[..., 0])
        out["keypoints"] = points[:, list(flip_idx)] if flip_idx is not None else points
    return out


class HorizontalFlip(Dataset):
    """Wraps a training dataset of ``(image, target)`` and mirrors each sample with probability ``p``.

    Randomness comes from the wrapper's own generator (seeded; re-seeded per DataLoader worker from the
    worker's seed), as :class:`netsculpt.data.augment.RandomShift`'s does."""

    def __init__(self, dataset: Dataset, p: float, flip_idx: Sequence[int] | None, seed: int = 0) -> None:
        self.dataset, self.p = dataset, float(p)
        self.flip_idx = tuple(flip_idx) if flip_idx is not None else None
        self.generator = torch.Generator().manual_seed(seed)
        self._worker: int | None = None

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Any]:
        worker = get_worker_info()
        if worker is not None and self._worker != worker.id:
            self.generator.manual_seed(worker.seed)
            self._worker = worker.id
        image, target = self.dataset[index]
        if float(torch.rand((), generator=self.generator)) >= self.p:
            return image, target
        return image.flip(-1), flip_target(target, image.shape[-1], self.flip_idx)


def flip_idx_of(dataset: Dataset) -> tuple[int, ...] | None:
    """The keypoint reorder of a YOLO pose dataset (its YAML's ``flip_idx``) or of COCO keypoint files (from
    the keypoint names); ``None`` for a dataset without keypoints. Refuses keypoints with no way to mirror."""
    inner = getattr(dataset, "dataset", dataset)  # data.limit wraps it in a Subset
    count = getattr(inner, "num_keypoints", None) or (getattr(inner, "kpt_shape", None) or (0,))[0]
    if not count:
        return None
    given = getattr(inner, "flip_idx", None)
    if given is not None:
        return tuple(given)
    names = getattr(inner, "keypoint_names", None) or []
    derived = mirrored_keypoints(names) if len(names) == count else None
    if derived is None:
        raise DataError(
            f"data.options.flip mirrors images, and these {count} keypoints have no flip_idx (a YOLO YAML's "
            "flip_idx, or COCO keypoint names with left_/right_ sides) to swap left and right joints: add "
            "flip_idx to the dataset YAML, or remove flip"
        )
    return derived
