"""Sparse palettes in plain packing: a mask of the points off the zero entry, then only their indices.

A layer sparsified and then palettized (k-means and DKM keep an exact-zero centroid for it) has most of
its indices on one table entry, and plain packing spends ``bits`` on every one of them. Where it makes
the file smaller, such a palette is stored as a mask over its points (True: the index is not the group's
zero entry), in the smaller of the two plain mask layouts sparse float tensors use (bitmap or run
lengths, :func:`~netsculpt.weights.sparse_store.encode_mask`), followed by the bit-packed indices of the
kept points only. A group's zero entry is the first table entry whose values are all 0, read off the
table itself, so nothing else is recorded; a group without one keeps every point. The indices, and so the
weights, reload bit for bit. Packed format version 3; files without such a palette are written as before.
"""

from __future__ import annotations

import numpy as np
from torch import Tensor

from netsculpt.errors import CheckpointError
from netsculpt.weights.packing import pack_bits, packed_nbytes, unpack_bits
from netsculpt.weights.palette import Palette
from netsculpt.weights.sparse_store import decode_mask, encode_mask

PLAIN_LAYOUTS = ("bitmap", "runs")


def zero_entries(lut: Tensor) -> np.ndarray:
    """Per group, the first entry of ``lut`` (``(groups, k, dim)``) whose values are all 0, or -1."""
    zero = (lut == 0).all(-1).numpy()
    return np.where(zero.any(-1), zero.argmax(-1), -1)


def encode_masked(palette: Palette, overhead: int) -> tuple[str, int, int, np.ndarray] | None:
    """``(mask layout, kept points, mask bytes, mask + kept indices)`` when that plus ``overhead`` header
    bytes is smaller than packing every index, else None (no zero entry, or too few points on it)."""
    zeros = zero_entries(palette.lut)
    if (zeros < 0).all():
        return None
    indices = palette.indices.numpy()
    mask = indices != zeros[:, None]  # a group without a zero entry (-1) keeps every point
    layout, mask_bytes = encode_mask(mask, mask.shape, "plain")
    kept = pack_bits(indices[mask], palette.bits)
    if mask_bytes.size + kept.size + overhead >= packed_nbytes(indices.size, palette.bits):
        return None
    return layout, int(mask.sum()), int(mask_bytes.size), np.concatenate([mask_bytes, kept])


def masked_nbytes(bits: int, kept: int, mask_bytes: int) -> int:
    """Bytes a masked palette takes in ``palettes.indices``."""
    return mask_bytes + packed_nbytes(kept, bits)


def decode_masked(
    layout: str, data: np.ndarray, bits: int, lut: Tensor, points: int, kept: int, mask_bytes: int, where: str
) -> np.ndarray:
    """Every point's index (``(groups * points,)`` uint8) from a mask and the kept points' indices."""
    groups = lut.shape[0]
    mask = decode_mask(layout, data[:mask_bytes], (groups, points), where)
    if int(mask.sum()) != kept:
        raise CheckpointError(f"{where}: the palette mask keeps {int(mask.sum())} points, not {kept}")
    fill = np.repeat(zero_entries(lut), points)
    if (fill[~mask] < 0).any():
        raise CheckpointError(f"{where}: the palette mask drops points of a group whose table has no zero")
    codes = np.where(mask, 0, fill).astype(np.uint8)
    codes[mask] = unpack_bits(data[mask_bytes:], bits, kept)
    return codes
