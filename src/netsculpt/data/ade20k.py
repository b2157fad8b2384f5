"""ADE20K as the SceneParsing benchmark ships it (``ADEChallengeData2016``): images and index annotations.

``root/images/{training,validation}/ADE_*.jpg`` is paired with ``root/annotations/<split>/ADE_*.png``
(same stem, sub-folders mirrored), whose pixel value is 0 for "other" and 1..150 for the 150 classes. As
mmseg reads it (``reduce_zero_label``), 0 becomes 255 (ignored by the loss and by mIoU) and 1..150 become
0..149; 255 stays ignored. ``train`` / ``val`` name the splits too. The full ADE20K release (RGB-coded
``*_seg.png``) is another format: convert it, or use the SceneParsing files.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from netsculpt.data.benchmark_masks import BenchmarkSegmentation, id_table, resolve_split
from netsculpt.data.dense_files import list_images
from netsculpt.errors import DataError

NUM_CLASSES = 150
TABLE = id_table({raw: raw - 1 for raw in range(1, NUM_CLASSES + 1)}, (0, 255))
SPLITS = {"train": "training", "val": "validation", "training": "training", "validation": "validation"}
LAYOUT = "images/<training|validation>/*.jpg + annotations/<training|validation>/*.png"


def find_pairs(root: Path, split: str) -> list[tuple[Path, Path]]:
    """``(image, annotation)`` of ``split``, sorted; each annotation checked to exist."""
    if not root.is_dir():
        raise DataError(f"ADE20K folder {str(root)!r} does not exist; fix the root option")
    if not (root / "images").is_dir() or not (root / "annotations").is_dir():
        inner = root / "ADEChallengeData2016"
        hint = f"point root at {str(inner)!r}" if inner.is_dir() else "unzip ADEChallengeData2016.zip"
        raise DataError(f"{root}: not an ADEChallengeData2016 folder ({LAYOUT}); {hint}")
    images_dir, masks_dir = root / "images" / split, root / "annotations" / split
    if not masks_dir.is_dir():
        raise DataError(f"{root}: the {split!r} annotations folder {str(masks_dir)!r} does not exist")
    pairs = []
    for image in list_images(images_dir, f"{root} ({split})"):
        mask = (masks_dir / image.relative_to(images_dir)).with_suffix(".png")
        if not mask.is_file():
            raise DataError(
                f"{image}: no annotation {str(mask)!r} (a PNG of the same stem); add it or drop it"
            )
        pairs.append((image, mask))
    return pairs


class ADE20KSegmentation(BenchmarkSegmentation):
    """``(image, class map)`` of one SceneParsing split: 150 classes (0..149), 255 ignored."""

    num_classes = NUM_CLASSES

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "training",
        *,
        size: int | tuple[int, int] | None = None,
        channels: int = 3,
    ):
        super().__init__(size, channels)
        self.root = Path(root)
        self.split = resolve_split(split, SPLITS, self.root, "ADE20K")
        self.pairs = find_pairs(self.root, self.split)
        self.check(f"{self.root} ({self.split})")

    def table_of(self, mask: Path) -> tuple[np.ndarray, str]:
        return TABLE, "ADE20K SceneParsing class ids (0 other, 1..150, 255 ignored)"
