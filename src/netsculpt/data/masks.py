"""Your own segmentation data as mask folders: images and same-stem PNG index masks (VOC, Cityscapes style).

Two layouts under ``root``: ``images/<split>/*.jpg`` with ``masks/<split>/*.png`` (sub-folders mirrored),
or Pascal VOC's ``JPEGImages/`` + ``SegmentationClass/`` + ``ImageSets/Segmentation/<split>.txt``. A mask
is a palette or greyscale PNG whose pixel value is the class id; 255 marks pixels no loss or metric counts
(VOC's object borders). ``num_classes`` is given, or inferred as the largest class id in the training masks
plus one. Every pair is checked when the dataset is made (each image has a mask of its own size), before
any pixel is decoded; ``size`` resizes images bilinearly and masks by nearest neighbour (class ids are
never blended), so a batch stacks whatever the files' sizes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from netsculpt.data.dense_files import IMAGE_SUFFIXES, check_channels, image_size, list_images, read_image
from netsculpt.errors import DataError

IGNORE = 255
MASK_MODES = ("1", "L", "P", "I", "I;16")  # index images; a colour mask's pixel is not a class id
_INFERRED: dict[tuple, int] = {}  # the last split's inferred class count, by its masks' paths and stamps
LAYOUT = "images/<split>/*.jpg + masks/<split>/*.png, or VOC's JPEGImages + SegmentationClass"


def _voc_pairs(root: Path, split: str) -> list[tuple[Path, Path]]:
    listing = root / "ImageSets" / "Segmentation" / f"{split}.txt"
    if not listing.is_file():
        raise DataError(
            f"{root}: a VOC layout needs {str(listing)!r} listing the {split!r} images; create it or set the "
            "split option to a list that exists"
        )
    pairs = []
    for n, line in enumerate(listing.read_text().splitlines(), 1):
        stem = line.strip()
        if not stem:
            continue
        found = [p for s in IMAGE_SUFFIXES if (p := root / "JPEGImages" / f"{stem}{s}").is_file()]
        if not found:
            raise DataError(f"{listing}, line {n}: no image {stem!r} in {str(root / 'JPEGImages')!r}")
        pairs.append((found[0], root / "SegmentationClass" / f"{stem}.png"))
    return pairs


def find_pairs(root: Path, split: str) -> list[tuple[Path, Path]]:
    """``(image, mask)`` paths of ``split``, sorted; every mask is checked to exist."""
    if not root.is_dir():
        raise DataError(f"segmentation data folder {str(root)!r} does not exist; fix the root option")
    for marker, name in (("leftImg8bit", "cityscapes"), ("annotations", "ade20k")):
        if (root / marker).is_dir() and not (root / "masks").is_dir():  # ids these readers map
            raise DataError(
                f"{root}: a {marker}/ folder and no masks/: this is the {name} layout, whose label ids "
                f"need its own mapping; read it as data {name!r} (CLI --data {name})"
            )
    if (root / "images").is_dir() or (root / "masks").is_dir():
        images_dir, masks_dir = root / "images" / split, root / "masks" / split
        for folder in (images_dir, masks_dir):
            if not folder.is_dir():
                raise DataError(
                    f"{root}: the {split!r} split folder {str(folder)!r} does not exist; the layout is "
                    f"{LAYOUT}: create it or set the split option to a folder that exists"
                )
        images = list_images(images_dir, f"{root} ({split})")
        pairs = [(im, (masks_dir / im.relative_to(images_dir)).with_suffix(".png")) for im in images]
    elif (root / "JPEGImages").is_dir() and (root / "SegmentationClass").is_dir():
        pairs = _voc_pairs(root, split)
    else:
        raise DataError(f"{root}: neither mask-folder layout is there ({LAYOUT}); fix the root option")
    if not pairs:
        raise DataError(f"{root}: the {split!r} split has no images")
    for image, mask in pairs:
        if not mask.is_file():
            raise DataError(f"{image}: no mask {str(mask)!r} (a PNG of the same stem); add it or drop it")
    return pairs


def read_mask(path: Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """``(H, W)`` int64 class ids of one index mask, resized by nearest neighbour to ``size`` ``(H, W)``."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.mode not in MASK_MODES:
                raise DataError(
                    f"{path}: a colour ({im.mode}) mask; netsculpt reads index masks, a palette or "
                    "greyscale PNG whose pixel value is the class id: convert the colours to class ids"
                )
            if size is not None and im.size != (size[1], size[0]):
                im = im.resize((size[1], size[0]), Image.Resampling.NEAREST)
            return np.asarray(im).astype(np.int64)
    except OSError as exc:
        raise DataError(f"{path}: not a readable PNG mask ({exc})") from None


def check_sizes(pairs: list[tuple[Path, Path]]) -> None:
    """Every mask the size of its image, from the files' headers (no pixel decoded)."""
    for image, mask in pairs:
        if image_size(image) != image_size(mask):
            (w, h), (mw, mh) = image_size(image), image_size(mask)
            raise DataError(
                f"{mask}: {mw}x{mh} pixels but its image {image.name} is {w}x{h}; a mask labels its "
                "image pixel for pixel: export it at the image's size"
            )


def size_pair(size: int | tuple[int, int] | list[int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    pair = (size, size) if isinstance(size, int) else tuple(size)
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 8 for v in pair):
        raise DataError(f"size must be an int >= 8 or [height, width], got {size!r}")
    return pair  # type: ignore[return-value]


class MaskSegmentation(Dataset):
    """``(image, class map)`` pairs of one split: ``(C, H, W)`` float in [0, 1] and ``(H, W)`` int64.

    ``size`` (int or ``(H, W)``, None to keep the files' size) resizes both; ``num_classes`` None infers
    it from this split's masks (the largest id other than 255, plus one).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        *,
        size: int | tuple[int, int] | None = None,
        channels: int = 3,
        num_classes: int | None = None,
    ):
        self.root, self.split = Path(root), split
        self.channels, self.size = check_channels(channels), size_pair(size)
        self.pairs = find_pairs(self.root, split)
        check_sizes(self.pairs)
        if num_classes is None:
            num_classes = self._infer_classes()
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or not 2 <= num_classes <= 255:
            raise DataError(f"{self.root}: num_classes must be an int in 2..255 (255 marks ignored pixels)")
        self.num_classes = num_classes

    def _infer_classes(self) -> int:
        # a run builds the training split once per loader: the scan is remembered while no mask changes
        key = tuple((str(m), m.stat().st_mtime_ns, m.stat().st_size) for _, m in self.pairs)
        if key not in _INFERRED:
            _INFERRED.clear()
            _INFERRED[key] = self._scan()
        return _INFERRED[key]

    def _scan(self) -> int:
        top = -1
        for _, mask in self.pairs:
            ids = np.unique(read_mask(mask))
            ids = ids[ids != IGNORE]
            top = max(top, int(ids.max()) if ids.size else -1)
        if top < 1:
            raise DataError(
                f"{self.root}: the {self.split!r} masks hold at most one class id ({top}); set num_classes"
            )
        return top + 1

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image_path, mask_path = self.pairs[index]
        image = read_image(image_path, self.channels, self.size)
        mask = read_mask(mask_path, self.size)
        bad = (mask >= self.num_classes) & (mask != IGNORE)
        if bad.any():
            raise DataError(
                f"{mask_path}: class id {int(mask[bad].max())} but num_classes is {self.num_classes} (ids "
                f"0..{self.num_classes - 1}, {IGNORE} ignored); set num_classes or fix the mask"
            )
        return image, torch.from_numpy(mask)
