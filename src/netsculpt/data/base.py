"""The dataset registry and the plain values every dataset builder returns.

A builder turns a name (plus options) into :class:`RawSplits`: raw pixel tensors and labels for a train and a
test split, with a :class:`DatasetInfo`. Everything after that (resize, channel conversion, normalisation,
``limit``, loaders) is shared code in :mod:`netsculpt.data.prepare` and :mod:`netsculpt.data.api`, so a
user-registered dataset gets all of it for free.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from netsculpt.errors import DataError
from netsculpt.registry import Registry


@dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about a dataset: classes, input shape and normalisation constants."""

    name: str
    num_classes: int
    in_channels: int
    image_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.mean) != self.in_channels or len(self.std) != self.in_channels:
            raise DataError(
                f"dataset {self.name!r}: mean/std need one value per channel ({self.in_channels}), "
                f"got mean={self.mean} std={self.std}"
            )
        if any(s <= 0 for s in self.std):
            raise DataError(f"dataset {self.name!r}: std values must be positive, got {self.std}")


@dataclass
class RawSplits:
    """A builder's output: un-normalised images in ``[0, 1]`` scale and integer labels for both splits.

    Images are ``N x C x H x W`` tensors, either ``uint8`` (0..255, compact for large sets) or floating point
    already in ``[0, 1]``. ``classes`` holds human-readable class names when the source has them.
    """

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    info: DatasetInfo
    classes: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            images: torch.Tensor = getattr(self, f"{split}_images")
            labels = torch.as_tensor(getattr(self, f"{split}_labels"), dtype=torch.int64)
            setattr(self, f"{split}_labels", labels)
            if images.ndim != 4 or images.shape[0] != labels.shape[0]:
                raise DataError(
                    f"dataset {self.info.name!r}: {split} images must be N x C x H x W with one label each, "
                    f"got images {tuple(images.shape)} and {labels.shape[0]} labels"
                )
            if images.dtype != torch.uint8 and not images.is_floating_point():
                raise DataError(f"dataset {self.info.name!r}: {split} images must be uint8 or float")
            if labels.numel() and (labels.min() < 0 or labels.max() >= self.info.num_classes):
                raise DataError(
                    f"dataset {self.info.name!r}: {split} labels must lie in 0..{self.info.num_classes - 1}, "
                    f"found {int(labels.min())}..{int(labels.max())}"
                )


class Builder(Protocol):
    """Builds a dataset: ``builder(root=..., download=..., **options) -> RawSplits``."""

    def __call__(self, *, root: Path | None, download: bool, **options: Any) -> RawSplits: ...


InfoSource = DatasetInfo | Callable[..., DatasetInfo] | None


@dataclass(frozen=True)
class DatasetEntry:
    """A registered dataset: its builder and, when known without loading, its info."""

    builder: Builder
    info: InfoSource = None


DATASETS: Registry[DatasetEntry] = Registry("dataset")


def register_dataset(
    name: str, *, info: InfoSource = None, overwrite: bool = False
) -> Callable[[Builder], Builder]:
    """Decorator that registers ``builder`` under ``name`` so every netsculpt entry point can load it.

    ``info`` (a :class:`DatasetInfo`, or a callable taking the same options as the builder) lets
    :func:`dataset_info` answer without reading any files; without it, the dataset is built to find out.
    """

    def add(builder: Builder) -> Builder:
        DATASETS.register(name, DatasetEntry(builder, info), overwrite=overwrite)
        return builder

    return add


def data_home() -> Path:
    """Default home of file-based datasets: ``$NETSCULPT_DATA``, else ``~/.cache/netsculpt/data``."""
    env = os.environ.get("NETSCULPT_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "netsculpt" / "data"


def resolve_root(root: str | os.PathLike[str] | None, default_name: str) -> Path:
    """The user's ``root`` as a path, or the default folder ``data_home()/default_name``."""
    return Path(root).expanduser() if root is not None else data_home() / default_name


def no_download(name: str, folder: Path, expected: list[str], where: str) -> DataError:
    """The error for ``download=True``: netsculpt never fetches data, so say what to get and where."""
    return DataError(
        f"dataset {name!r}: downloading is not possible here (netsculpt never downloads data at run time). "
        f"Get the files from {where} and put {', '.join(expected)} in {folder}, "
        f"then pass root={str(folder)!r} (or set NETSCULPT_DATA)."
    )


def missing_files(name: str, folder: Path, expected: list[str], missing: list[str]) -> DataError:
    """The error for absent files: names the folder searched and every file expected there."""
    state = "does not exist" if not folder.exists() else f"lacks {', '.join(missing)}"
    return DataError(
        f"dataset {name!r}: folder {folder} {state}. Expected files: {', '.join(expected)}. "
        f"Put them there or pass root=<folder containing them>."
    )
