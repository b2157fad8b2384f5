"""The ``mnist`` dataset from real IDX files written in tmp_path (plain and gzipped)."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from netsculpt.data import load_dataset
from netsculpt.data.bundled import MNIST_MEAN, MNIST_STD
from netsculpt.data.mnist import read_idx
from netsculpt.errors import DataError

from ._files import MNIST_NAMES, idx_bytes, write_mnist_folder

ALL_NAMES = [name for pair in MNIST_NAMES.values() for name in pair]


@pytest.mark.parametrize("gz", [False, True])
def test_loads_official_idx_files(tmp_path, gz: bool) -> None:
    arrays = write_mnist_folder(tmp_path, gz=gz, train=30, test=20)
    train, test = load_dataset("mnist", root=tmp_path)
    assert (len(train), len(test)) == (30, 20)
    for split, data in (("train", train), ("test", test)):
        pixels = data.images[:, 0] * MNIST_STD[0] + MNIST_MEAN[0]
        # Same pixels (order and values) as written, after undoing the normalisation.
        np.testing.assert_allclose(pixels.numpy() * 255, arrays[f"{split}_images"], atol=1e-3)
        assert data.labels.tolist() == arrays[f"{split}_labels"].tolist()


def test_torchvision_layout_is_found(tmp_path) -> None:
    write_mnist_folder(tmp_path / "MNIST" / "raw", gz=True, train=10, test=10)
    train, _ = load_dataset("mnist", root=tmp_path)
    assert len(train) == 10


def test_read_idx_checks_magic_and_length(tmp_path) -> None:
    good = tmp_path / "labels"
    good.write_bytes(idx_bytes(np.arange(5, dtype=np.uint8)))
    assert read_idx(good, 0x00000801).tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(DataError, match="expected 0x00000803"):
        read_idx(good, 0x00000803)  # a label file where images were expected
    bad_magic = tmp_path / "bad"
    bad_magic.write_bytes(b"\x12\x34\x08\x01" + good.read_bytes()[4:])
    with pytest.raises(DataError, match="bad IDX magic number 0x12340801"):
        read_idx(bad_magic)
    truncated = tmp_path / "short"
    truncated.write_bytes(good.read_bytes()[:-2])
    with pytest.raises(DataError, match="truncated or corrupt"):
        read_idx(truncated)
    not_gzip = tmp_path / "x.gz"
    not_gzip.write_bytes(good.read_bytes())
    with pytest.raises(DataError, match="not a valid gzip"):
        read_idx(not_gzip)
    assert read_idx(_gz(tmp_path / "ok.gz", good.read_bytes())).shape == (5,)


def _gz(path, data: bytes):
    path.write_bytes(gzip.compress(data))
    return path


def test_mismatched_counts_are_refused(tmp_path) -> None:
    write_mnist_folder(tmp_path, gz=False, train=10, test=10)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(9, dtype=np.uint8)))
    with pytest.raises(DataError, match=r"10 images but .* 9 labels"):
        load_dataset("mnist", root=tmp_path)


def test_missing_folder_names_every_expected_file(tmp_path) -> None:
    folder = tmp_path / "nowhere"
    with pytest.raises(DataError) as excinfo:
        load_dataset("mnist", root=folder)
    message = str(excinfo.value)
    assert str(folder) in message and "does not exist" in message
    assert all(name in message for name in ALL_NAMES)


def test_partly_missing_folder_says_which_files(tmp_path) -> None:
    write_mnist_folder(tmp_path, gz=True)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"lacks t10k-labels-idx1-ubyte\[\.gz\]\."):
        load_dataset("mnist", root=tmp_path)


def test_download_is_refused_with_instructions(tmp_path) -> None:
    with pytest.raises(DataError, match="downloading is not possible") as excinfo:
        load_dataset("mnist", root=tmp_path, download=True)
    assert str(tmp_path) in str(excinfo.value) and "train-images-idx3-ubyte" in str(excinfo.value)
    write_mnist_folder(tmp_path, gz=False, train=10, test=10)
    assert len(load_dataset("mnist", root=tmp_path, download=True)[0]) == 10  # present files: no error
