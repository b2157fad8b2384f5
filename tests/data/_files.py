"""Write tiny datasets in the official on-disk formats, independently of the code under test.

IDX files are assembled byte by byte with ``struct`` and CIFAR batches with plain ``pickle``, so a bug in
netsculpt's readers cannot be mirrored by a matching bug in the writer.
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np

MNIST_NAMES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
CIFAR_CLASSES = b"airplane automobile bird cat deer dog frog horse ship truck".split()


def idx_bytes(array: np.ndarray) -> bytes:
    """An unsigned-byte IDX file: 0x00 0x00 0x08 <ndim>, big-endian uint32 dims, then the values."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_idx(path: Path, array: np.ndarray, gz: bool) -> Path:
    data = idx_bytes(array)
    if gz:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def mnist_arrays(split: str, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic images whose first pixel encodes the sample index, labels cycling 0..9."""
    rng = np.random.default_rng(1 if split == "train" else 2)
    images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
    images[:, 0, 0] = np.arange(count, dtype=np.uint8)
    labels = (np.arange(count) % 10).astype(np.uint8)
    return images, labels


def write_mnist_folder(folder: Path, gz: bool, train: int = 30, test: int = 20) -> dict[str, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, count in (("train", train), ("test", test)):
        images, labels = mnist_arrays(split, count)
        write_idx(folder / MNIST_NAMES[split][0], images, gz)
        write_idx(folder / MNIST_NAMES[split][1], labels, gz)
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels
    return arrays


def cifar_batch(count: int, seed: int) -> dict[bytes, Any]:
    """One batch in the official layout: uint8 data [N, 3072] (R, G, B planes) and a list of int labels."""
    rng = np.random.default_rng(seed)
    return {
        b"batch_label": f"batch {seed}".encode(),
        b"labels": [int(v) for v in rng.integers(0, 10, size=count)],
        b"data": rng.integers(0, 256, size=(count, 3072), dtype=np.uint8),
        b"filenames": [f"img_{seed}_{i}.png".encode() for i in range(count)],
    }


class Python2StylePickler(pickle._Pickler):
    """Pickles as Python 2's cPickle wrote the official CIFAR files: every string is a byte string
    (``BINSTRING`` opcodes) and numpy lives in ``numpy.core``."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj: str | bytes) -> None:
        data = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str
    dispatch[str] = save_py2_str

    def save_global(self, obj: Any, name: str | None = None) -> None:
        module = obj.__module__.replace("numpy._core", "numpy.core")
        self.write(pickle.GLOBAL + f"{module}\n{name or obj.__qualname__}\n".encode())
        self.memoize(obj)


def dumps(content: object, protocol: int | str) -> bytes:
    """``protocol``: a pickle protocol number, or ``"py2"`` for the official files' Python 2 layout."""
    if protocol != "py2":
        return pickle.dumps(content, protocol=int(protocol))
    buffer = io.BytesIO()
    Python2StylePickler(buffer, protocol=2).dump(content)
    return buffer.getvalue()


def write_cifar_folder(
    parent: Path, per_batch: int = 6, protocol: int | str = 2
) -> dict[str, dict[bytes, Any]]:
    """``parent/cifar-10-batches-py/`` with data_batch_1..5, test_batch and batches.meta."""
    folder = parent / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    batches = {f"data_batch_{i}": cifar_batch(per_batch, seed=i) for i in range(1, 6)}
    batches["test_batch"] = cifar_batch(per_batch, seed=99)
    meta = {b"label_names": CIFAR_CLASSES, b"num_cases_per_batch": per_batch, b"num_vis": 3072}
    for name, content in [*batches.items(), ("batches.meta", meta)]:
        (folder / name).write_bytes(dumps(content, protocol))
    return batches
