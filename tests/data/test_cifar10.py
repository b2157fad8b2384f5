"""``cifar10`` from a real python-pickle batch folder written in tmp_path, and the restricted unpickler."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from netsculpt.data import load_dataset
from netsculpt.data.cifar10 import CIFAR10_MEAN, CIFAR10_STD, FILES
from netsculpt.data.safe_pickle import safe_load
from netsculpt.errors import DataError

from ._files import write_cifar_folder


def _unnormalise(images: torch.Tensor) -> np.ndarray:
    mean = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
    return ((images * std + mean) * 255).numpy()


# "py2": written the way the official files were (Python 2 byte strings, numpy.core globals).
@pytest.mark.parametrize("protocol", ["py2", 2, 4, 5])
def test_loads_official_layout(tmp_path, protocol: int | str) -> None:
    batches = write_cifar_folder(tmp_path, per_batch=6, protocol=protocol)
    train, test = load_dataset("cifar10", root=tmp_path)  # root = parent of cifar-10-batches-py
    assert (len(train), len(test)) == (30, 6)  # 5 data batches of 6, one test batch of 6
    assert train[0][0].shape == (3, 32, 32)
    expected = np.concatenate([batches[f"data_batch_{i}"][b"data"] for i in range(1, 6)])
    # Row layout: 1,024 red values, then green, then blue, each row-major 32 x 32.
    np.testing.assert_allclose(_unnormalise(train.images), expected.reshape(-1, 3, 32, 32), atol=1e-3)
    assert test.labels.tolist() == batches["test_batch"][b"labels"]
    assert train.classes is not None and train.classes[0] == "airplane" and len(train.classes) == 10


def test_root_may_be_the_batch_folder_itself(tmp_path) -> None:
    write_cifar_folder(tmp_path)
    train, _ = load_dataset("cifar10", root=tmp_path / "cifar-10-batches-py", limit=10)
    assert len(train) == 10


def test_missing_files_are_named(tmp_path) -> None:
    write_cifar_folder(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DataError, match="lacks data_batch_3") as excinfo:
        load_dataset("cifar10", root=tmp_path)
    assert all(name in str(excinfo.value) for name in FILES)
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("cifar10", root=tmp_path / "absent")
    with pytest.raises(DataError, match="downloading is not possible"):
        load_dataset("cifar10", root=tmp_path / "absent", download=True)


class _RunsCommand:
    """What an attacker would pickle: unpickling it calls os.system."""

    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_before_running(tmp_path) -> None:
    marker = tmp_path / "pwned"
    write_cifar_folder(tmp_path)
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_1"
    batch.write_bytes(pickle.dumps({b"data": _RunsCommand(marker), b"labels": []}))
    # os.system pickles as posix.system (nt.system on Windows).
    with pytest.raises(DataError, match=r"refusing to unpickle global (posix|nt)\.system"):
        load_dataset("cifar10", root=tmp_path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "payload",
    [eval, getattr, __import__, pickle.loads],
    ids=["eval", "getattr", "import", "pickle.loads"],
)
def test_other_dangerous_globals_are_refused(tmp_path, payload) -> None:
    path = tmp_path / "evil"
    path.write_bytes(pickle.dumps(payload))
    with pytest.raises(DataError, match="refusing to unpickle global"):
        safe_load(path)


def test_object_arrays_and_wrong_types_are_refused(tmp_path) -> None:
    path = tmp_path / "objects"
    path.write_bytes(pickle.dumps(np.array([1, "x"], dtype=object)))
    with pytest.raises(DataError, match="object-dtype"):
        safe_load(path)
    write_cifar_folder(tmp_path)
    batch = tmp_path / "cifar-10-batches-py" / "test_batch"
    batch.write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}))
    with pytest.raises(DataError, match="uint8 array of shape N x 3072"):
        load_dataset("cifar10", root=tmp_path)


def test_corrupt_pickle_gives_data_error(tmp_path) -> None:
    path = tmp_path / "cut"
    path.write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8)})[:50])
    with pytest.raises(DataError, match="not a readable pickle"):
        safe_load(path)
