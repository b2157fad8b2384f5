"""A held-out split for scoring candidates, carved from the training set.

A search that scores candidates on the test set would pick widths that suit those very images, and the
test accuracy reported afterwards would flatter it. The held-out images come out of the training split
instead (stratified by class, fixed seed); the test split stays untouched for the final report. For
an unbiased search the model should not have been trained on them either: train on the remainder.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader

from netsculpt.data import ImageDataset, load_dataset, training_loader
from netsculpt.data.sampling import stratified_subset
from netsculpt.errors import DataError


def split_holdout(dataset: ImageDataset, size: int, seed: int = 0) -> tuple[ImageDataset, ImageDataset]:
    """``(rest, held_out)``: ``size`` samples drawn per class in proportion, and everything else."""
    n = len(dataset)
    if not isinstance(size, int) or not 0 < size < n:
        raise DataError(f"the held-out split must have between 1 and {n - 1} samples, got {size!r}")
    held = torch.from_numpy(stratified_subset(dataset.labels.numpy(), size, seed))
    mask = torch.ones(n, dtype=torch.bool)
    mask[held] = False
    rest = torch.nonzero(mask).flatten()

    def subset(index: torch.Tensor) -> ImageDataset:
        return ImageDataset(
            dataset.images[index], dataset.labels[index], dataset.info, dataset.classes, dataset.transform
        )

    return subset(rest), subset(held)


DEFAULT_HELD_OUT = 500
DEFAULT_HELD_OUT_SHARE = 0.2  # as a recipe stage holds out: one rule for the CLI and recipes


def default_val_size(n: int) -> int:
    """500 held-out samples, or a fifth of a smaller split (``--limit 400`` holds out 80), so a small
    split still leaves most of itself to train on instead of failing the size check."""
    return max(1, min(DEFAULT_HELD_OUT, int(n * DEFAULT_HELD_OUT_SHARE)))


def holdout_loaders(
    name: str,
    *,
    val_size: int | None,
    batch_size: int,
    eval_batch_size: int | None = None,
    augment: bool = False,
    shift: int | None = None,
    seed: int = 0,
    order_seed: int | None = None,
    **options: Any,
) -> tuple[DataLoader, DataLoader, DataLoader]:
    """``(train, held_out, test)`` loaders for dataset ``name``: the training split minus ``val_size``
    held-out samples (shuffled, optionally augmented), the held-out samples, and the test split.
    ``options`` go to :func:`netsculpt.data.load_dataset` (``resize``, ``channels``, ``limit``, ``root``).

    ``seed`` fixes the subset and the split; ``order_seed`` (default: ``seed``) only the training batches'
    order and augmentation. Repeats of a fine-tune from one base model need a new ``order_seed`` and the
    same ``seed``: otherwise every repeat sees identical batches (and, with no dropout, gives identical
    weights), while a new split would put the base's training images into the held-out set.
    ``val_size=None`` holds out :func:`default_val_size` of the training split."""
    train, test = load_dataset(name, seed=seed, **options)
    rest, held = split_holdout(train, default_val_size(len(train)) if val_size is None else val_size, seed)
    eval_batch_size = eval_batch_size or batch_size
    order = seed if order_seed is None else order_seed
    return (
        training_loader(rest, batch_size=batch_size, seed=order, augment=augment, shift=shift),
        DataLoader(held, batch_size=eval_batch_size, shuffle=False),
        DataLoader(test, batch_size=eval_batch_size, shuffle=False),
    )
