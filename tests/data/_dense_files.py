"""Write tiny YOLO-format detection datasets and mask-folder segmentation datasets, as the tools that
make them lay them out: PNG / JPEG by PIL, labels as plain text, the dataset YAML by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def write_yolo(root: Path, splits: dict[str, int], *, names: str = "[box, bar]", seed: int = 0) -> Path:
    """``n`` 64 px RGB images per split, each with one or two bright rectangles (channel = class) and
    their labels; returns the dataset YAML."""
    rng = np.random.default_rng(seed)
    for split, n in splits.items():
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for i in range(n):
            pixels = np.zeros((64, 64, 3), np.uint8)
            lines = []
            for _ in range(int(rng.integers(1, 3))):
                x, y, w, h = (int(v) for v in (*rng.integers(0, 40, 2), *rng.integers(10, 24, 2)))
                cls = int(rng.integers(0, 2))
                pixels[y : y + h, x : x + w, cls] = 255
                lines.append(f"{cls} {(x + w / 2) / 64:.6f} {(y + h / 2) / 64:.6f} {w / 64:.6f} {h / 64:.6f}")
            Image.fromarray(pixels).save(root / "images" / split / f"{i}.png")
            (root / "labels" / split / f"{i}.txt").write_text("\n".join(lines) + "\n")
    yaml = root / "data.yaml"
    yaml.write_text(f"path: .\ntrain: images/train\nval: images/val\nnames: {names}\n")
    return yaml


def write_masks(root: Path, splits: dict[str, int], *, side: int = 32, seed: int = 0) -> Path:
    """``n`` RGB images per split with a palette PNG mask each: background 0, a square of class 1 or 2
    (drawn in the image's matching channel) and a 255 (ignored) border around it."""
    rng = np.random.default_rng(seed)
    for split, n in splits.items():
        (root / "images" / split).mkdir(parents=True)
        (root / "masks" / split).mkdir(parents=True)
        for i in range(n):
            pixels = np.zeros((side, side, 3), np.uint8)
            mask = np.zeros((side, side), np.uint8)
            x, y = (int(v) for v in rng.integers(1, side // 2, 2))
            cls = int(rng.integers(1, 3))
            mask[y - 1 : y + side // 3 + 1, x - 1 : x + side // 3 + 1] = 255
            mask[y : y + side // 3, x : x + side // 3] = cls
            pixels[mask == cls, cls] = 255
            Image.fromarray(pixels).save(root / "images" / split / f"{i}.png")
            save_palette_mask(mask, root / "masks" / split / f"{i}.png")
    return root


def save_palette_mask(mask: np.ndarray, path: Path) -> None:
    """A VOC-style palette PNG: pixel values are class ids, the palette only colours them."""
    image = Image.fromarray(mask.astype(np.uint8), mode="P")
    image.putpalette([v for i in range(256) for v in ((i * 67) % 256, (i * 151) % 256, (i * 29) % 256)])
    image.save(path)


# 40x20 image: a box centred at (20, 10) 20x10 px, keypoints (8, 4) visible, (20, 10) labelled but hidden,
# (0, 0) not labelled, and one 0.5% past the right edge (clipped to it and made invisible, as ultralytics)
POSE3 = "0 0.5 0.5 0.5 0.5 0.2 0.2 2 0.5 0.5 1 0 0 0 1.005 0.5 2\n"


def write_pose(root: Path, labels: dict[str, str], extra: str = "kpt_shape: [4, 3]\n") -> Path:
    """A YOLO pose dataset: black 40x20 ``images/train/<stem>.png`` with ``labels``' text, the YAML with
    ``extra`` (kpt_shape, flip_idx) whose val split is the training one; returns the YAML."""
    (root / "images/train").mkdir(parents=True, exist_ok=True)
    (root / "labels/train").mkdir(parents=True, exist_ok=True)
    for stem, text in labels.items():
        Image.fromarray(np.zeros((20, 40, 3), np.uint8)).save(root / f"images/train/{stem}.png")
        (root / f"labels/train/{stem}.txt").write_text(text)
    (root / "data.yaml").write_text(
        "path: .\ntrain: images/train\nval: images/train\nnames: [person, dog]\n" + extra
    )
    return root / "data.yaml"
