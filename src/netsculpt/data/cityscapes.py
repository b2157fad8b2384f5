"""Cityscapes fine annotations as the official packages unzip: ``leftImg8bit/`` + ``gtFine/``.

``root/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png`` is paired with
``root/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelTrainIds.png`` when that file is there
(cityscapesScripts' ``createTrainIdLabelImgs`` writes it; mmseg trains on it), else with
``..._gtFine_labelIds.png``, whose 34 label ids are mapped to the 19 training classes by the official
table (cityscapesScripts' ``labels.py``; every other id, "unlabeled" and "parking" alike, becomes 255 and
counts in no loss or metric). The images are 2048x1024: ``size`` (``(H, W)``, e.g. ``(256, 512)``)
downscales images bilinearly and masks by nearest neighbour.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from netsculpt.data.benchmark_masks import BenchmarkSegmentation, id_table, resolve_split
from netsculpt.errors import DataError

# the 19 training classes, in training-id order, and their label ids in labels.py
CLASSES = ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
           "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle",
           "bicycle")  # fmt: skip
LABEL_IDS = (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33)
LABEL_ID_TABLE = id_table(dict(zip(LABEL_IDS, range(19))), range(34))  # ids 0..33; license plate's -1
TRAIN_ID_TABLE = id_table({i: i for i in range(19)}, (255,))  # is never written to a PNG
SPLITS = {"train": "train", "val": "val", "test": "test"}
IMAGE_END, IDS_END, TRAIN_IDS_END = "_leftImg8bit.png", "_gtFine_labelIds.png", "_gtFine_labelTrainIds.png"
LAYOUT = "leftImg8bit/<split>/<city>/*_leftImg8bit.png and gtFine/<split>/<city>/*_gtFine_labelIds.png"


def find_frames(root: Path, split: str) -> list[tuple[Path, Path]]:
    """``(image, label mask)`` of every frame of ``split``, sorted; each mask checked to exist."""
    if not root.is_dir():
        raise DataError(f"Cityscapes folder {str(root)!r} does not exist; fix the root option")
    for top, package in (
        ("leftImg8bit", "leftImg8bit_trainvaltest.zip"),
        ("gtFine", "gtFine_trainvaltest.zip"),
    ):
        if not (root / top).is_dir():
            raise DataError(
                f"{root}: no {top}/ folder; a Cityscapes root holds {LAYOUT}: unzip {package} into it"
            )
    images_dir, masks_dir = root / "leftImg8bit" / split, root / "gtFine" / split
    for folder in (images_dir, masks_dir):
        if not folder.is_dir():
            raise DataError(f"{root}: the {split!r} split folder {str(folder)!r} does not exist; unzip it")
    images = sorted(p for p in images_dir.rglob(f"*{IMAGE_END}") if p.is_file())
    if not images:
        raise DataError(f"{images_dir}: no *{IMAGE_END} images (the layout is {LAYOUT})")
    pairs = []
    for image in images:
        frame = image.name[: -len(IMAGE_END)]
        folder = masks_dir / image.parent.relative_to(images_dir)
        train_ids, ids = folder / f"{frame}{TRAIN_IDS_END}", folder / f"{frame}{IDS_END}"
        if not (train_ids.is_file() or ids.is_file()):
            raise DataError(
                f"{image}: no label mask {str(ids)!r} (or {train_ids.name}); unzip gtFine_trainvaltest.zip "
                "into the root, or remove the image"
            )
        pairs.append((image, train_ids if train_ids.is_file() else ids))
    return pairs


class CityscapesSegmentation(BenchmarkSegmentation):
    """``(image, class map)`` of one Cityscapes split: 19 classes, 255 ignored.

    ``split`` is ``train``, ``val`` or ``test`` (whose public masks are all "unlabeled": nothing to score).
    """

    num_classes = len(CLASSES)
    names = CLASSES

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        *,
        size: int | tuple[int, int] | None = None,
        channels: int = 3,
    ):
        super().__init__(size, channels)
        self.root = Path(root)
        self.split = resolve_split(split, SPLITS, self.root, "Cityscapes")
        self.pairs = find_frames(self.root, self.split)
        self.check(f"{self.root} ({self.split})")

    def table_of(self, mask: Path) -> tuple[np.ndarray, str]:
        if mask.name.endswith(TRAIN_IDS_END):
            return TRAIN_ID_TABLE, "Cityscapes training ids (0..18, 255 ignored)"
        return LABEL_ID_TABLE, "Cityscapes label ids (0..33)"
