"""Bit-packing of n-bit palette indices (1..8 bits) into bytes, and back.

Index ``i`` occupies bits ``[i*bits, (i+1)*bits)`` of a little-endian bit stream (least significant
bit first inside each byte), so any bit width packs densely: 1,000 3-bit indices take 375 bytes, not
1,000. Vectorised with numpy's packbits/unpackbits; no Python loop over indices.
"""

from __future__ import annotations

import numpy as np

from netsculpt.errors import ConfigError
from netsculpt.weights.layout import MAX_BITS


def _check_bits(bits: int) -> None:
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= MAX_BITS:
        raise ConfigError(f"bits must be an integer in 1..{MAX_BITS}, got {bits!r}")


def packed_nbytes(count: int, bits: int) -> int:
    """Bytes that ``count`` indices of ``bits`` bits occupy once packed."""
    return (count * bits + 7) // 8


def pack_bits(indices: np.ndarray, bits: int) -> np.ndarray:
    """Pack non-negative integers below ``2**bits`` into a uint8 array of ``packed_nbytes`` bytes."""
    _check_bits(bits)
    values = np.asarray(indices).reshape(-1)
    if values.size and (values.min() < 0 or values.max() >= 2**bits):
        raise ConfigError(f"indices must lie in [0, {2**bits - 1}] for {bits}-bit packing")
    as_bytes = values.astype(np.uint8)[:, None]
    stream = np.unpackbits(as_bytes, axis=1, bitorder="little")[:, :bits]
    return np.packbits(stream.reshape(-1), bitorder="little")


def unpack_bits(data: np.ndarray, bits: int, count: int) -> np.ndarray:
    """Inverse of :func:`pack_bits`: ``count`` uint8 indices."""
    _check_bits(bits)
    data = np.asarray(data, dtype=np.uint8).reshape(-1)
    if data.size < packed_nbytes(count, bits):
        raise ConfigError(
            f"packed data holds {data.size} bytes but {count} {bits}-bit indices need "
            f"{packed_nbytes(count, bits)}"
        )
    stream = np.unpackbits(data, bitorder="little")[: count * bits].reshape(count, bits)
    weights = (1 << np.arange(bits, dtype=np.uint16)).astype(np.uint16)
    return (stream.astype(np.uint16) @ weights).astype(np.uint8)
