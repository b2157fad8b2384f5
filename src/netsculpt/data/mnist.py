"""The full MNIST from the four official IDX files, parsed and validated here with numpy.

IDX layout: two zero bytes, a type byte (0x08 = unsigned byte), a byte giving the number of dimensions,
then each dimension as a big-endian uint32, then the values in row-major order. Image files therefore start
with the magic number 0x00000803 and label files with 0x00000801. Any 28x28 IDX set in the same layout
(e.g. Fashion-MNIST) loads too; pass ``mean``/``std`` to override the MNIST constants.
"""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path

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
from netsculpt.data.bundled import DIGIT_NAMES, MNIST_MEAN, MNIST_STD
from netsculpt.errors import DataError

IDX_DTYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4")}
IDX_DTYPES |= {0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
IMAGES_MAGIC, LABELS_MAGIC = 0x00000803, 0x00000801
MAX_IDX_BYTES = 1 << 30  # 1 GiB: the largest IDX data sets (EMNIST) are about half that

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
SOURCE = "the official MNIST page (or any mirror of its four .gz files)"


def read_idx(path: str | Path, expect_magic: int | None = None) -> np.ndarray:
    """Read one IDX file (optionally gzipped) into a numpy array, validating header and length."""
    path = Path(path)
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            inflate = zlib.decompressobj(wbits=31)  # gzip framing
            raw = inflate.decompress(raw, MAX_IDX_BYTES + 1)
        except zlib.error as exc:
            raise DataError(f"{path}: not a valid gzip file ({exc}); re-download it") from None
        if len(raw) > MAX_IDX_BYTES:
            raise DataError(f"{path}: decompresses to more than {MAX_IDX_BYTES:,} bytes; not an IDX file")
        if not inflate.eof:
            raise DataError(f"{path}: the gzip stream is truncated; re-download it")
    if len(raw) < 4:
        raise DataError(f"{path}: only {len(raw)} bytes, too short for an IDX header")
    magic = int.from_bytes(raw[:4], "big")
    if raw[:2] != b"\0\0" or raw[2] not in IDX_DTYPES or raw[3] == 0:
        raise DataError(
            f"{path}: bad IDX magic number 0x{magic:08x} (expected 0x0000080X with X = dimensions)"
        )
    if expect_magic is not None and magic != expect_magic:
        raise DataError(f"{path}: IDX magic number 0x{magic:08x}, expected 0x{expect_magic:08x}")
    ndim, dtype = raw[3], IDX_DTYPES[raw[2]]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header ({len(raw)} bytes for {ndim} dimensions)")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = header + math.prod(dims) * dtype.itemsize
    if len(raw) != expected:
        raise DataError(
            f"{path}: IDX header says dimensions {dims} ({expected} bytes in all), but the file has "
            f"{len(raw)} bytes; it is truncated or corrupt"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def _find(folder: Path, base: str) -> Path | None:
    for name in (base, base + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def locate(root: Path) -> dict[str, Path]:
    """The four files in ``root`` (or torchvision's ``root/MNIST/raw``); raises naming the missing ones."""
    expected = [name for pair in FILES.values() for name in pair]
    candidates = [root, root / "MNIST" / "raw"]
    for folder in candidates:
        found = {base: _find(folder, base) for base in expected}
        if all(found.values()):
            return {base: path for base, path in found.items() if path is not None}
    found = {base: _find(root, base) for base in expected}
    missing = [f"{b}[.gz]" for b, p in found.items() if p is None]
    raise missing_files("mnist", root, [f"{b}[.gz]" for b in expected], missing)


def mnist_info(
    *, root: Path | None = None, mean: tuple[float, ...] = MNIST_MEAN, std: tuple[float, ...] = MNIST_STD
) -> DatasetInfo:
    """The official MNIST shape (1 x 28 x 28, 10 classes), known without reading the files."""
    return DatasetInfo("mnist", 10, 1, (28, 28), tuple(mean), tuple(std))


@register_dataset("mnist", info=mnist_info)
def build_mnist(
    *,
    root: Path | None = None,
    download: bool = False,
    mean: tuple[float, ...] = MNIST_MEAN,
    std: tuple[float, ...] = MNIST_STD,
) -> RawSplits:
    """MNIST 60,000/10,000 from the IDX files in ``root`` (default ``$NETSCULPT_DATA/mnist``)."""
    folder = resolve_root(root, "mnist")
    try:
        paths = locate(folder)
    except DataError:
        if download:
            raise no_download("mnist", folder, [n for p in FILES.values() for n in p], SOURCE) from None
        raise
    arrays: dict[str, np.ndarray] = {}
    for split, (images_name, labels_name) in FILES.items():
        images = read_idx(paths[images_name], IMAGES_MAGIC)
        labels = read_idx(paths[labels_name], LABELS_MAGIC)
        if images.shape[0] != labels.shape[0]:
            raise DataError(
                f"{paths[images_name]} holds {images.shape[0]} images but {paths[labels_name]} holds "
                f"{labels.shape[0]} labels; the files do not belong together"
            )
        if labels.size and labels.max() > 9:
            raise DataError(f"{paths[labels_name]}: labels must be digits 0..9, found {int(labels.max())}")
        arrays[f"{split}_images"] = images[:, None]
        arrays[f"{split}_labels"] = labels.astype(np.int64)
    height, width = arrays["train_images"].shape[-2:]
    if arrays["test_images"].shape[-2:] != (height, width):
        raise DataError(f"{folder}: train and test images differ in size")
    info = DatasetInfo("mnist", 10, 1, (int(height), int(width)), tuple(mean), tuple(std))
    tensors = {key: torch.from_numpy(value) for key, value in arrays.items()}
    return RawSplits(**tensors, info=info, classes=DIGIT_NAMES)
