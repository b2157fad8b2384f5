"""The public entry points: list, describe, load and batch any registered dataset by name."""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from netsculpt.data.augment import RandomShift
from netsculpt.data.base import DATASETS, DatasetEntry, DatasetInfo, RawSplits
from netsculpt.data.prepare import ImageDataset, prepare_split, transformed_info
from netsculpt.data.sampling import stratified_subset
from netsculpt.errors import DataError

PathLike = str | os.PathLike[str]
Size = int | tuple[int, int]

TEST_LIMIT_SEED = 0
"""``limit`` picks the test subset with this fixed seed, so every run seed is scored on the same images."""


def list_datasets(pattern: str | None = None) -> list[str]:
    """Registered dataset names, sorted, optionally filtered by a shell pattern such as ``"mnist*"``."""
    return DATASETS.names(pattern)


def _entry(name: str, options: dict[str, Any]) -> DatasetEntry:
    """The registered entry, after checking ``options`` are ones its builder accepts."""
    entry = DATASETS.get(name)
    params = inspect.signature(entry.builder).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        accepted = [p for p in params if p not in ("root", "download")]
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            takes = f"it takes: {', '.join(accepted)}" if accepted else "it takes no dataset options"
            raise DataError(f"dataset {name!r} has no option {', '.join(map(repr, unknown))}; {takes}")
    return entry


def _root(root: PathLike | None) -> Path | None:
    return Path(root).expanduser() if root is not None else None


def _build(name: str, root: PathLike | None, download: bool, options: dict[str, Any]) -> RawSplits:
    raw = _entry(name, options).builder(root=_root(root), download=download, **options)
    if not isinstance(raw, RawSplits):
        raise DataError(
            f"the builder registered as dataset {name!r} must return RawSplits, got {type(raw).__name__}"
        )
    expected = (raw.info.in_channels, *raw.info.image_size)
    for split, images in (("train", raw.train_images), ("test", raw.test_images)):
        if tuple(images.shape[1:]) != expected:
            raise DataError(
                f"dataset {name!r}: {split} images are {tuple(images.shape[1:])} but its info says "
                f"{expected} (in_channels, H, W); fix the builder"
            )
    return raw


def dataset_info(
    name: str,
    *,
    root: PathLike | None = None,
    resize: Size | None = None,
    channels: int | None = None,
    **options: Any,
) -> DatasetInfo:
    """What a model sees from ``name`` with these options: classes, channels, size, mean and std.

    Answered without reading data when the dataset registered its info; otherwise the dataset is built.
    """
    entry = _entry(name, options)
    if isinstance(entry.info, DatasetInfo):
        info = entry.info
    elif entry.info is not None:
        info = entry.info(root=_root(root), **options)
    else:
        info = _build(name, root, False, options).info
    return transformed_info(info, resize, channels)


def _check_limit(limit: int | None) -> None:
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise DataError(f"limit must be a positive int (samples per split) or None, got {limit!r}")


def load_dataset(
    name: str,
    *,
    root: PathLike | None = None,
    resize: Size | None = None,
    channels: int | None = None,
    limit: int | None = None,
    seed: int = 0,
    download: bool = False,
    **options: Any,
) -> tuple[ImageDataset, ImageDataset]:
    """Load ``name`` as ``(train, test)`` datasets of ``(C x H x W normalised float tensor, int label)``.

    ``resize`` (int or ``(H, W)``) and ``channels`` (e.g. 3 to repeat a grey channel for RGB models) are
    applied once, up front. ``limit`` keeps at most that many samples per split, stratified by class: the
    training subset depends on ``seed``, the test subset never does (so scores stay comparable). Bundled
    datasets' train/test splits are fixed and ignore ``seed``. ``options`` go to the dataset's builder.
    """
    _check_limit(limit)
    raw = _build(name, root, download, options)
    splits = []
    for split, images, labels in (
        ("train", raw.train_images, raw.train_labels),
        ("test", raw.test_images, raw.test_labels),
    ):
        if limit is not None and limit < len(labels):
            keep = stratified_subset(labels.numpy(), limit, seed if split == "train" else TEST_LIMIT_SEED)
            index = torch.from_numpy(keep)
            images, labels = images[index], labels[index]
        splits.append(
            prepare_split(images, labels, raw.info, resize=resize, channels=channels, classes=raw.classes)
        )
    return splits[0], splits[1]


def make_loaders(
    name: str,
    *,
    batch_size: int = 128,
    test_batch_size: int | None = None,
    root: PathLike | None = None,
    resize: Size | None = None,
    channels: int | None = None,
    limit: int | None = None,
    seed: int = 0,
    num_workers: int = 0,
    shuffle_train: bool = True,
    augment: bool = False,
    shift: int | None = None,
    **options: Any,
) -> tuple[DataLoader, DataLoader]:
    """Train and test loaders for ``name``; the same ``seed`` gives the same batches in the same order.

    Shuffling uses a ``torch.Generator`` seeded with ``seed``. ``augment=True`` wraps the training split in
    :class:`~netsculpt.data.augment.RandomShift` (random shifts of up to ``shift`` pixels, by default 1/8
    of the image side; no flips); the test loader is never augmented nor shuffled. A very small network
    (a pruned LeNet-5) can underfit 3-pixel shifts of 28x28 digits, hence ``shift``. Other arguments are
    as in :func:`load_dataset`.
    """
    if shift is not None and (not isinstance(shift, int) or isinstance(shift, bool) or shift < 0):
        raise DataError(
            f"shift must be an int >= 0 (pixels) or None for 1/8 of the image side, got {shift!r}"
        )
    test_batch_size = batch_size if test_batch_size is None else test_batch_size
    for label, value in (("batch_size", batch_size), ("test_batch_size", test_batch_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise DataError(f"{label} must be a positive int, got {value!r}")
    if not isinstance(num_workers, int) or num_workers < 0:
        raise DataError(f"num_workers must be an int >= 0, got {num_workers!r}")
    train, test = load_dataset(
        name, root=root, resize=resize, channels=channels, limit=limit, seed=seed, **options
    )
    train_loader = training_loader(
        train,
        batch_size=batch_size,
        seed=seed,
        augment=augment,
        shift=shift,
        shuffle=shuffle_train,
        num_workers=num_workers,
    )
    test_loader = DataLoader(
        test,
        batch_size=test_batch_size,
        shuffle=False,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
    )
    return train_loader, test_loader


def training_loader(
    dataset: Dataset,
    *,
    batch_size: int,
    seed: int = 0,
    augment: bool = False,
    shift: int | None = None,
    shuffle: bool = True,
    num_workers: int = 0,
) -> DataLoader:
    """Batches of ``dataset`` shuffled by a ``torch.Generator`` seeded with ``seed``, wrapped in
    :class:`~netsculpt.data.augment.RandomShift` (shifts of up to ``shift`` pixels) when ``augment``.

    Every training loader goes through here, so the same seed gives the same batches whether they come
    from :func:`make_loaders`, a held-out split or a benchmark's own subset."""
    data = RandomShift(dataset, padding=shift, seed=seed) if augment else dataset
    return DataLoader(
        data,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=torch.Generator().manual_seed(seed),
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
    )
