"""Write tiny Cityscapes and ADE20K (SceneParsing) folders in the layouts their archives unzip to: names,
folders and PNG modes as the official files have them (8-bit grey label masks, RGB colour images)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

# label ids of one 4x8 Cityscapes frame: road 7, sidewalk 8, car 26, person 24, bicycle 33 (training
# classes 0, 1, 13, 11, 18) and unlabeled 0, ego vehicle 1, parking 9, guard rail 14 (all ignored)
LABEL_IDS = np.array(
    [
        [7, 7, 8, 8, 26, 26, 24, 24],
        [7, 7, 8, 8, 26, 26, 24, 24],
        [0, 1, 9, 14, 33, 33, 7, 7],
        [0, 0, 0, 0, 7, 7, 7, 7],
    ],
    np.uint8,
)
TRAIN_IDS = np.array(
    [
        [0, 0, 1, 1, 13, 13, 11, 11],
        [0, 0, 1, 1, 13, 13, 11, 11],
        [255] * 4 + [18, 18, 0, 0],
        [255] * 4 + [0] * 4,
    ],
    np.uint8,
)
FRAMES = {"train": ["aachen_000000_000019", "bochum_000000_000313"], "val": ["frankfurt_000000_000294"]}


def write_cityscapes(root: Path, *, scale: int = 4, frames: dict[str, list[str]] | None = None) -> Path:
    """Each frame: an RGB image coloured by class, its labelIds mask (``LABEL_IDS`` upscaled ``scale``
    times, 2:1 like the real 2048x1024) and the colour / instance / polygon files gtFine also holds."""
    mask = np.kron(LABEL_IDS, np.ones((scale, scale), np.uint8))
    for split, names in (frames or FRAMES).items():
        for frame in names:
            city = frame.split("_")[0]
            images, labels = root / "leftImg8bit" / split / city, root / "gtFine" / split / city
            images.mkdir(parents=True, exist_ok=True)
            labels.mkdir(parents=True, exist_ok=True)
            pixels = np.stack([mask * 7, mask * 3, 255 - mask * 5], -1).astype(np.uint8)
            Image.fromarray(pixels).save(images / f"{frame}_leftImg8bit.png")
            Image.fromarray(mask, mode="L").save(labels / f"{frame}_gtFine_labelIds.png")
            Image.fromarray(pixels).save(labels / f"{frame}_gtFine_color.png")
            Image.fromarray(mask.astype(np.uint16) * 1000).save(labels / f"{frame}_gtFine_instanceIds.png")
            (labels / f"{frame}_gtFine_polygons.json").write_text(json.dumps({"objects": []}))
    return root


# raw SceneParsing values: 0 "other", 1 wall, 3 floor, 150 flag, and the ids mmseg trains on (minus one)
ADE_RAW = np.array([[0, 1, 1, 3], [0, 150, 3, 3], [13, 13, 0, 1]], np.uint8)
ADE_TRAIN = np.array([[255, 0, 0, 2], [255, 149, 2, 2], [12, 12, 255, 0]], np.int64)


def write_ade20k(root: Path, splits: dict[str, int] | None = None, *, scale: int = 4) -> Path:
    """``ADEChallengeData2016``: ``ADE_train_00000001.jpg`` / ``.png`` pairs (JPEG images, grey PNG
    annotations of ``ADE_RAW`` upscaled ``scale`` times)."""
    mask = np.kron(ADE_RAW, np.ones((scale, scale), np.uint8))
    for split, n in (splits or {"training": 2, "validation": 1}).items():
        kind = "train" if split == "training" else "val"
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "annotations" / split).mkdir(parents=True, exist_ok=True)
        for i in range(1, n + 1):
            stem = f"ADE_{kind}_{i:08d}"
            pixels = np.stack([mask, mask, mask], -1).astype(np.uint8)
            Image.fromarray(pixels).save(root / "images" / split / f"{stem}.jpg", quality=95)
            Image.fromarray(mask, mode="L").save(root / "annotations" / split / f"{stem}.png")
    (root / "objectInfo150.txt").write_text("Idx\tRatio\tTrain\tVal\tName\n1\t0.1576\t11664\t1172\twall\n")
    return root
