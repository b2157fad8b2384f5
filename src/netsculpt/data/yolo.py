"""Your own detection data in YOLO format (ultralytics' layout): a dataset YAML, images, one .txt per image.

The YAML (read with ``yaml.safe_load``) names ``path`` (the dataset folder; relative to the YAML's own
folder, which it defaults to), ``train`` / ``val`` / optional ``test`` (each an image folder relative to
``path``, a ``.txt`` list of image paths, or a list of either) and ``names`` (a list, or a dict
``{0: name, 1: name, ...}``). An image ``.../images/<split>/x.jpg`` has its boxes in
``.../labels/<split>/x.txt`` (the last ``images`` folder of its path becomes ``labels``; an image with no
label file has no boxes), one ``class cx cy w h`` line per box, normalised to [0, 1] by the image's width
and height (turned as its EXIF orientation says, as ultralytics reads it). A YOLO segment line
(``class x1 y1 x2 y2 ...``) is read as its polygon's bounding box. A pose dataset (``kpt_shape`` in the
YAML, ``netsculpt.data.yolo_pose``) has K keypoints after each box, read into ``keypoints`` beside them.

Every label file is read and checked when the dataset is made, before any image is opened. Targets follow
torchvision's convention as ``CocoDetection``'s do: ``boxes`` ``(x1, y1, x2, y2)`` in pixels, ``labels``
``1 + class`` (0 is the background class torchvision's detectors reserve).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from netsculpt.data.dense_files import IMAGE_SUFFIXES, check_channels, list_images, read_image
from netsculpt.data.yolo_pose import keypoint_fields, line_form, oks_sigmas, read_keypoints
from netsculpt.errors import DataError

SLACK = 0.01  # ultralytics accepts coordinates up to 1% past the image (exporters' rounding); clipped
LINE_FORM = "'class cx cy w h' (5 columns, normalised to [0, 1] by the image's width and height)"


@dataclass(frozen=True)
class YoloConfig:
    """A dataset YAML, read and checked: the dataset folder, the split entries and the class names."""

    path: Path  # the YAML file itself, for messages
    root: Path
    splits: dict[str, list[str]]
    names: list[str]
    kpt_shape: tuple[int, int] | None = None  # a pose dataset's (keypoints, 2 | 3)
    flip_idx: tuple[int, ...] | None = None  # each keypoint's mirror image under a horizontal flip
    kpt_sigmas: tuple[float, ...] | None = None  # kpt_oks_sigmas: each keypoint's OKS tolerance


def _names(path: Path, data: dict[str, Any]) -> list[str]:
    names, count = data.get("names"), data.get("nc")
    if isinstance(names, dict):
        if set(names) != set(range(len(names))):
            keys = sorted(map(str, names))[:6]
            raise DataError(
                f"{path}: names has keys {keys}; a dict of names needs the class ids 0..{len(names) - 1}"
            )
        names = [names[i] for i in range(len(names))]
    elif names is None and isinstance(count, int) and count > 0:
        names = [str(i) for i in range(count)]
    if not isinstance(names, list) or not names:
        raise DataError(
            f"{path}: needs 'names', a list of class names (names: [cat, dog]) or a dict {{0: cat, 1: dog}}"
        )
    if count is not None and count != len(names):
        raise DataError(f"{path}: nc is {count!r} but names lists {len(names)} classes; make them agree")
    return [str(n) for n in names]


def load_yolo_yaml(path: str | os.PathLike[str]) -> YoloConfig:
    """The dataset YAML at ``path``, checked (never executed: ``yaml.safe_load``)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise DataError(f"YOLO dataset YAML {str(path)!r} does not exist; pass the one ultralytics trains on")
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a YAML file ({exc})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: a YOLO dataset YAML is a mapping with path, train, val and names")
    root = data.get("path")
    if root is not None and not isinstance(root, str):
        raise DataError(f"{path}: path must be the dataset folder as a string, got {root!r}")
    root_dir = path.parent if not root else (path.parent / Path(root).expanduser())
    if not root_dir.is_dir():
        raise DataError(
            f"{path}: path {root!r} is {str(root_dir)!r}, which does not exist; a relative path is taken "
            "from the YAML's own folder (ultralytics: from its datasets_dir setting): make it absolute"
        )
    splits: dict[str, list[str]] = {}
    for split in ("train", "val", "test"):
        entry = data.get(split)
        entries = [entry] if isinstance(entry, str) else entry
        if entry is None:
            continue
        if not isinstance(entries, list) or not entries or not all(isinstance(e, str) for e in entries):
            raise DataError(f"{path}: {split} must be an image folder, a .txt list of images, or a list")
        splits[split] = entries
    kpt_shape, flip_idx = keypoint_fields(path, data)
    sigmas = oks_sigmas(path, data, kpt_shape)
    return YoloConfig(path, root_dir, splits, _names(path, data), kpt_shape, flip_idx, sigmas)


def split_images(config: YoloConfig, split: str) -> list[Path]:
    """The images of ``split`` (those in its folders and on its .txt lists), sorted by path as ultralytics
    sorts them, so ``data.limit`` keeps the same first images."""
    if split not in config.splits:
        raise DataError(
            f"{config.path}: has no {split!r} split; add e.g. '{split}: images/{split}' (a folder relative "
            f"to path {str(config.root)!r})"
        )
    images: list[Path] = []
    for entry in config.splits[split]:
        where = config.root / entry
        if where.is_file() and where.suffix == ".txt":
            images += _listed(where)
        elif where.is_dir():
            images += list_images(where, f"{config.path} ({split})")
        else:
            state = "is another kind of file" if where.exists() else "does not exist"
            raise DataError(
                f"{config.path}: the {split} split {entry!r} is neither a folder nor a .txt list: "
                f"{str(where)!r} {state}; create it or fix '{split}:' (relative to {str(config.root)!r})"
            )
    return sorted(images, key=str)


def _listed(listing: Path) -> list[Path]:
    """Image paths in a .txt list, one per line; relative ones are relative to the list's folder."""
    images = []
    for n, line in enumerate(listing.read_text(encoding="utf-8-sig").splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        image = Path(line) if Path(line).is_absolute() else listing.parent / line
        if image.suffix.lower() not in IMAGE_SUFFIXES or not image.is_file():
            raise DataError(f"{listing}, line {n}: {line!r} is not an image file ({image}); fix the line")
        images.append(image)
    if not images:
        raise DataError(f"{listing}: lists no images")
    return images


def label_path(image: Path) -> Path:
    """``.../images/<split>/x.jpg`` -> ``.../labels/<split>/x.txt`` (beside the image with no ``images``)."""
    parts = list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def parse_labels(path: Path, classes: int, kpt_shape: tuple[int, int] | None = None) -> np.ndarray:
    """``(K, 5)`` float64 rows ``class, x1, y1, x2, y2`` normalised, from one label file (checked); with
    ``kpt_shape`` ``(K, 5 + 3 * keypoints)``, each box's keypoints ``x, y, v`` (normalised) after it.

    As ultralytics trains on it: coordinates up to 1% outside [0, 1] are clipped (a box left with no area
    dropped), repeated lines kept once."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()  # a byte-order mark is no column
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable text label file ({exc})") from None
    rows = []
    for n, line in enumerate(lines, 1):
        cols = line.split()
        if not cols:
            continue
        where = f"{path}, line {n} ({line.strip()!r})"
        form = LINE_FORM if kpt_shape is None else line_form(kpt_shape)
        if kpt_shape is not None and len(cols) != 5 + kpt_shape[0] * kpt_shape[1]:
            raise DataError(f"{where}: {len(cols)} columns; a line of this YOLO pose dataset is {form}")
        elif kpt_shape is None and len(cols) != 5 and (len(cols) < 7 or len(cols) % 2 == 0):
            raise DataError(f"{where}: {len(cols)} columns; a YOLO detection label line is {form}")
        try:
            values = [float(c) for c in cols]
        except ValueError:
            raise DataError(f"{where}: not all numbers; a YOLO label line is {form}") from None
        cls, coords = values[0], np.array(values[1:])
        points = np.zeros((0, 3))
        if kpt_shape is not None:  # the box, then the keypoints
            coords, points = coords[:4], read_keypoints(where, values[5:], kpt_shape, SLACK)
        if not (0 <= cls < classes and cls == int(cls)):  # NaN fails the range test before int() sees it
            raise DataError(
                f"{where}: class id {cols[0]} is not one of the dataset's {classes} classes "
                f"(0..{classes - 1}); fix the line or add the class to names in the dataset YAML"
            )
        if not ((coords >= -SLACK) & (coords <= 1 + SLACK)).all():
            raise DataError(
                f"{where}: coordinates outside [0, 1]; YOLO labels are normalised by the image's width and "
                "height (divide pixel values by them)"
            )
        if len(coords) == 4:  # a box line (or a pose line's box)
            cx, cy, w, h = coords
            box = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
        else:  # a segment line: the polygon's extent
            box = [coords[0::2].min(), coords[1::2].min(), coords[0::2].max(), coords[1::2].max()]
        if box[2] <= box[0] or box[3] <= box[1]:
            raise DataError(f"{where}: an empty box (zero width or height); remove the line")
        box = np.clip(box, 0, 1)
        if box[2] > box[0] and box[3] > box[1]:  # one wholly past the edge (within the 1%) has no pixel
            rows.append([cls, *box, *points.ravel()])
    table = np.array(rows, dtype=np.float64).reshape(-1, 5 + 3 * (kpt_shape[0] if kpt_shape else 0))
    _, first = np.unique(table, axis=0, return_index=True)  # a line written twice is one box, as ultralytics
    return table[np.sort(first)]


class YoloDetection(Dataset):
    """``(image, target)`` pairs of one split of a YOLO dataset YAML, as ``CocoDetection`` yields them.

    ``image`` is ``(C, H, W)`` float in [0, 1] (``channels`` 1 or 3); ``target`` holds ``boxes``
    (pixels), ``labels`` (``1 + class``), ``image_id`` (the image's index in the split) and, for a pose
    dataset, ``keypoints`` ``(N, K, 3)``: ``x, y`` in pixels and visibility. ``flip_idx`` is the YAML's
    (None when absent); nothing here flips images, so it is there for your own augmentation.
    """

    def __init__(self, data_yaml: str | os.PathLike[str], split: str = "train", channels: int = 3):
        self.channels = check_channels(channels)
        self.config = load_yolo_yaml(data_yaml)
        self.names = self.config.names
        self.categories = list(range(len(self.names)))  # YOLO class ids, label = 1 + id
        self.kpt_shape, self.flip_idx = self.config.kpt_shape, self.config.flip_idx
        self.images = split_images(self.config, split)
        empty = np.zeros((0, 5 + 3 * (self.kpt_shape[0] if self.kpt_shape else 0)))
        self.labels = [
            parse_labels(lp, len(self.names), self.kpt_shape) if (lp := label_path(im)).is_file() else empty
            for im in self.images
        ]

    def __len__(self) -> int:
        return len(self.images)

    def box_count(self) -> int:
        """Ground-truth boxes in the split: mAP on a split with none is undefined."""
        return sum(len(rows) for rows in self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        image = read_image(self.images[index], self.channels, upright=True)
        height, width = image.shape[-2:]
        rows = self.labels[index]
        scale = np.array([width, height, width, height], dtype=np.float64)
        target = {
            "boxes": torch.tensor(rows[:, 1:5] * scale, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor(rows[:, 0] + 1, dtype=torch.int64),
            "image_id": torch.tensor(index),
        }
        if self.kpt_shape is not None:
            points = rows[:, 5:].reshape(-1, self.kpt_shape[0], 3) * np.array([width, height, 1.0])
            target["keypoints"] = torch.tensor(points, dtype=torch.float32)
        return image, target
