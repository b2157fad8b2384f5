"""Your own images in class folders: ``root/train/<class>/*.png|jpg``, ``root/test/<class>/*`` (or ``val``).

Images are read once with Pillow, converted to RGB (or grey with ``in_channels=1``), resized to
``image_size`` (default: the size of the first training image) and kept in memory as uint8, so this suits
small and medium folders. Class names are the sorted training folder names; label ``k`` is the ``k``-th.
Unless ``mean``/``std`` are given, they are measured on the training images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from netsculpt.data.base import DatasetInfo, RawSplits, register_dataset
from netsculpt.data.prepare import as_size
from netsculpt.errors import DataError
from netsculpt.progress import track

EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
TEST_FOLDERS = ("test", "val")


def _class_files(split_dir: Path) -> dict[str, list[Path]]:
    """``class name -> sorted image paths`` for one split folder."""
    classes = sorted(p for p in split_dir.iterdir() if p.is_dir())
    if not classes:
        raise DataError(
            f"imagefolder: {split_dir} has no class sub-folders; expected {split_dir}/<class>/*.png"
        )
    files = {}
    for folder in classes:
        images = sorted(p for p in folder.iterdir() if p.suffix.lower() in EXTENSIONS)
        if not images:
            raise DataError(
                f"imagefolder: class folder {folder} has no images ({', '.join(sorted(EXTENSIONS))})"
            )
        files[folder.name] = images
    return files


def _read(paths: list[Path], size: tuple[int, int], mode: str, what: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    out = np.empty((len(paths), size[0], size[1], 1 if mode == "L" else 3), dtype=np.uint8)
    for i, path in enumerate(track(paths, f"reading {what} images")):
        try:
            with Image.open(path) as image:
                image = image.convert(mode)
                if image.size != (size[1], size[0]):
                    image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
                out[i] = np.asarray(image).reshape(size[0], size[1], -1)
        except (UnidentifiedImageError, Image.DecompressionBombError, OSError) as exc:
            raise DataError(f"imagefolder: cannot read image {path}: {exc}") from None
    return out.transpose(0, 3, 1, 2)


def _first_size(path: Path) -> tuple[int, int]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.size[1], image.size[0]
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError) as exc:
        raise DataError(f"imagefolder: cannot read image {path}: {exc}") from None


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 ``images`` in [0, 1] scale, in chunks to bound memory."""
    total = torch.zeros(images.shape[1], dtype=torch.float64)
    squares = torch.zeros_like(total)
    for chunk in images.split(256):
        x = chunk.double().div_(255).transpose(0, 1).reshape(images.shape[1], -1)
        total += x.sum(dim=1)
        squares += (x * x).sum(dim=1)
    count = max(1, images.shape[0] * images.shape[2] * images.shape[3])
    mean = total / count
    std = (squares / count - mean * mean).clamp_min(1e-6).sqrt()
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


@register_dataset("imagefolder")
def build_imagefolder(
    *,
    root: Path | None = None,
    download: bool = False,
    image_size: int | tuple[int, int] | None = None,
    in_channels: int = 3,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
) -> RawSplits:
    """Images from ``root/train`` and ``root/test`` (or ``root/val``) class folders."""
    if root is None:
        raise DataError("imagefolder needs root=<folder> holding train/<class>/* and test/<class>/* images")
    if download:
        raise DataError(
            "imagefolder: downloading is not possible; put your images under root/train and root/test"
        )
    if in_channels not in (1, 3):
        raise DataError(f"imagefolder: in_channels must be 1 (grey) or 3 (RGB), got {in_channels!r}")
    root = Path(root).expanduser()
    train_dir = root / "train"
    test_dir = next((root / name for name in TEST_FOLDERS if (root / name).is_dir()), None)
    if not train_dir.is_dir() or test_dir is None:
        raise DataError(
            f"imagefolder: {root} must contain train/<class>/ and test/<class>/ (or val/<class>/) folders; "
            f"found train: {train_dir.is_dir()}, test or val: {test_dir is not None}"
        )
    train_files, test_files = _class_files(train_dir), _class_files(test_dir)
    classes = tuple(train_files)
    unknown = sorted(set(test_files) - set(classes))
    if unknown:
        raise DataError(f"imagefolder: {test_dir} has classes missing from {train_dir}: {', '.join(unknown)}")
    size = as_size(image_size) or _first_size(train_files[classes[0]][0])
    mode = "L" if in_channels == 1 else "RGB"
    splits = {}
    for split, files in (("train", train_files), ("test", test_files)):
        paths = [p for name in classes for p in files.get(name, [])]
        labels = [k for k, name in enumerate(classes) for _ in files.get(name, [])]
        splits[split] = (torch.from_numpy(_read(paths, size, mode, split)), torch.tensor(labels))
    if mean is None or std is None:
        measured_mean, measured_std = channel_stats(splits["train"][0])
        mean = measured_mean if mean is None else mean
        std = measured_std if std is None else std
    info = DatasetInfo("imagefolder", len(classes), in_channels, size, tuple(mean), tuple(std))
    return RawSplits(*splits["train"], *splits["test"], info=info, classes=classes)
