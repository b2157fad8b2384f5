"""CIFAR-10 from the official python batch folder ``cifar-10-batches-py/``.

The official batches are pickles, so they are read with :func:`netsculpt.data.safe_pickle.safe_load`, which
refuses every global except the few numpy needs to rebuild an array: a tampered file cannot run code. Each
batch is a dict with ``b"data"`` (uint8, N x 3072: 1,024 red, then green, then blue values, row-major) and
``b"labels"`` (N ints); ``batches.meta`` holds ``b"label_names"``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from netsculpt.data.base import (
    DatasetInfo,
    RawSplits,
    missing_files,
    no_download,
    register_dataset,
    resolve_root,
)
from netsculpt.data.safe_pickle import safe_load
from netsculpt.errors import DataError

FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
FILES = (*TRAIN_FILES, "test_batch", "batches.meta")
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
"""Per-channel pixel mean and standard deviation of the 50,000 training images."""
CIFAR10_INFO = DatasetInfo("cifar10", 10, 3, (32, 32), CIFAR10_MEAN, CIFAR10_STD)
SOURCE = "the CIFAR-10 page (the 'CIFAR-10 python version' archive, extracted)"


def locate(root: Path) -> Path:
    """The batch folder: ``root`` itself or ``root/cifar-10-batches-py``; raises naming the missing files."""
    for folder in (root, root / FOLDER):
        if all((folder / name).is_file() for name in FILES):
            return folder
    folder = root / FOLDER if (root / FOLDER).is_dir() else root
    missing = [name for name in FILES if not (folder / name).is_file()]
    raise missing_files("cifar10", folder, list(FILES), missing)


def _field(batch: Any, key: str, path: Path) -> Any:
    """A batch entry whether the pickle was written by Python 2 (bytes keys) or Python 3 (str keys)."""
    if not isinstance(batch, dict):
        raise DataError(f"{path}: expected a dict, found {type(batch).__name__}; not a CIFAR-10 batch")
    for candidate in (key.encode(), key):
        if candidate in batch:
            return batch[candidate]
    raise DataError(f"{path}: no {key!r} entry (found {sorted(map(str, batch))}); not a CIFAR-10 batch")


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file → (N x 3 x 32 x 32 uint8 images, N int64 labels), validated."""
    batch = safe_load(path)
    data, labels = _field(batch, "data", path), _field(batch, "labels", path)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        shape = getattr(data, "shape", None)
        raise DataError(
            f"{path}: 'data' must be a uint8 array of shape N x 3072, got {type(data).__name__} {shape}"
        )
    labels = np.asarray(labels)
    if labels.shape != (data.shape[0],) or labels.dtype.kind not in "iu":
        raise DataError(
            f"{path}: 'labels' must be {data.shape[0]} integers, got {labels.dtype} {labels.shape}"
        )
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{path}: labels must lie in 0..9, found {labels.min()}..{labels.max()}")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def read_class_names(path: Path) -> tuple[str, ...]:
    names = _field(safe_load(path), "label_names", path)
    if not isinstance(names, list) or len(names) != 10:
        raise DataError(f"{path}: 'label_names' must list 10 class names")
    return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)


@register_dataset("cifar10", info=CIFAR10_INFO)
def build_cifar10(*, root: Path | None = None, download: bool = False) -> RawSplits:
    """CIFAR-10 50,000/10,000 from ``root``: the batch folder or its parent (default: data_home()/cifar10)."""
    base = resolve_root(root, "cifar10")
    try:
        folder = locate(base)
    except DataError:
        if download:
            raise no_download("cifar10", base / FOLDER, list(FILES), SOURCE) from None
        raise
    train = [read_batch(folder / name) for name in TRAIN_FILES]
    test_images, test_labels = read_batch(folder / "test_batch")
    return RawSplits(
        train_images=torch.from_numpy(np.concatenate([images for images, _ in train])),
        train_labels=torch.from_numpy(np.concatenate([labels for _, labels in train])),
        test_images=torch.from_numpy(test_images),
        test_labels=torch.from_numpy(test_labels),
        info=CIFAR10_INFO,
        classes=read_class_names(folder / "batches.meta"),
    )
