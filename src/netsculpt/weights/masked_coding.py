"""The masked form of a context-coded sparse palette: a coded zero / nonzero mask, then the kept indices.

The plain context coder (:mod:`netsculpt.weights.coding`) spends a symbol of the palette's alphabet on
every point, the zero entry's points included. A sparse palette (most points on its zero entry, which
k-means and DKM keep for a sparsified layer) can instead be coded in two streams, both on the tensor's
2-D view (output channels x the rest) and both with adaptive counts per context, updated row by row so a
decoder rebuilds a row's probabilities at once:

* the mask (True: the point is not on its group's zero entry), with a binary context read off the rows
  above only: ``column`` (how often the rows above kept that input position, in 8 buckets), or the
  one-neighbour ``context`` / ``order0`` models of the plain coder, or plainly as a bitmap or run
  lengths, whichever is smallest;
* the indices of the kept points only, over the palette without its zero entry (one symbol fewer), the
  context being the full index at the same position of the previous output channel (``context``), or
  one context (``order0``), or bit-packed at the palette's width (``plain``), whichever is smallest.

:func:`netsculpt.weights.storage.pack_state` keeps this form only for a tensor where it is smaller than
the plain context form, header bytes included. Packed format 4.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from torch import Tensor

from netsculpt.errors import CheckpointError
from netsculpt.weights.coding import PRIOR, _family
from netsculpt.weights.packing import pack_bits, packed_nbytes, unpack_bits
from netsculpt.weights.palette import Palette
from netsculpt.weights.sparse_palette import zero_entries
from netsculpt.weights.sparse_store import PLAIN_INDICES, decode_mask, encode_mask, grid_shape

MASKED = "masked"  # the tag of a masked entry in the header's "coded" list
MASK_MODELS = ("column",)  # binary mask models of this module (the plain coder's are tried as well)
KEPT_MODELS = ("context", "order0", PLAIN_INDICES)
COLUMN_BUCKETS = 8  # of the share of rows above that kept a position (the first row has its own context)


def _column_contexts(kept_above: np.ndarray, r: int) -> np.ndarray:
    """Row ``r``'s mask contexts: 0 in the first row, else 1 + a bucket of how often the rows above kept
    that position, ``floor(8 sqrt((2 count + 1) / (2 r + 2)))`` capped at 7: an input a layer has pruned
    in most filters is pruned in the next. Integer arithmetic (the square root is of a whole number up to
    64, exact in float64), so every machine computes the same contexts."""
    if r == 0:
        return np.zeros(kept_above.size, dtype=np.int64)
    share = (COLUMN_BUCKETS**2 * (2 * kept_above + 1)) // (2 * r + 2)
    return 1 + np.minimum(np.floor(np.sqrt(share)).astype(np.int64), COLUMN_BUCKETS - 1)


def _encode(symbols: list[np.ndarray], contexts: list[np.ndarray], n_ctx: int, k: int) -> np.ndarray:
    """Range-code rows of symbols in ``[0, k)`` under adaptive counts per context; uint32 words."""
    import constriction

    counts = np.full((n_ctx, k), PRIOR, dtype=np.float64)
    encoder, family = constriction.stream.queue.RangeEncoder(), _family()
    for row, ctx in zip(symbols, contexts):
        if row.size:
            probs = counts[ctx]
            encoder.encode(row.astype(np.int32), family, probs / probs.sum(axis=1, keepdims=True))
            np.add.at(counts, (ctx, row.astype(np.int64)), 1.0)
    return encoder.get_compressed()


def _decoder(words: np.ndarray, n_ctx: int, k: int) -> Callable[[np.ndarray | None], np.ndarray]:
    """A function decoding the next row, given its contexts (the inverse of :func:`_encode`); called
    with None after the last row, it checks the stream ended there (decoding under a model the data was
    not coded with, a lying header, rarely fails before that)."""
    import constriction

    counts = np.full((n_ctx, k), PRIOR, dtype=np.float64)
    decoder, family = constriction.stream.queue.RangeDecoder(words), _family()

    def row(ctx: np.ndarray | None) -> np.ndarray:
        if ctx is None and not decoder.maybe_exhausted():
            raise ValueError("words are left over after the last symbol")
        if ctx is None or not ctx.size:
            return np.zeros(0, dtype=np.int64)
        probs = counts[ctx]
        out = np.asarray(decoder.decode(family, probs / probs.sum(axis=1, keepdims=True)), dtype=np.int64)
        np.add.at(counts, (ctx, out), 1.0)
        return out

    return row


def encode_column_mask(grid: np.ndarray) -> np.ndarray:
    """The ``column`` model's words for a 2-D bool mask."""
    contexts, kept = [], np.zeros(grid.shape[1], dtype=np.int64)
    for r in range(grid.shape[0]):
        contexts.append(_column_contexts(kept, r))
        kept += grid[r]
    return _encode([row.astype(np.int64) for row in grid], contexts, 1 + COLUMN_BUCKETS, 2)


def decode_column_mask(words: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Inverse of :func:`encode_column_mask`: a ``(rows, cols)`` bool mask."""
    grid = np.zeros((rows, cols), dtype=bool)
    row, kept = _decoder(words, 1 + COLUMN_BUCKETS, 2), np.zeros(cols, dtype=np.int64)
    for r in range(rows):
        grid[r] = row(_column_contexts(kept, r)).astype(bool)
        kept += grid[r]
    row(None)
    return grid


def _kept_streams(
    codes: np.ndarray, mask: np.ndarray, fill: np.ndarray, model: str
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per row, the kept points' symbols (zero entry removed) and their contexts (the index above)."""
    symbols, contexts = [], []
    for r in range(codes.shape[0]):
        keep = mask[r]
        row = codes[r, keep].astype(np.int64)
        zero = fill[r, keep]
        symbols.append(np.where((zero >= 0) & (row > zero), row - 1, row))
        above = 1 + codes[r - 1, keep].astype(np.int64) if r and model == "context" else None
        contexts.append(above if above is not None else np.zeros(row.size, dtype=np.int64))
    return symbols, contexts


def encode_masked_coded(
    palette: Palette, kept_models: tuple[str, ...] = KEPT_MODELS
) -> tuple[list[object], np.ndarray] | None:
    """``([mask layout, mask bytes, kept points, kept model], data)`` of the smallest masked form of
    ``palette`` (the kept indices in the smallest of ``kept_models``), or None without a zero entry."""
    zeros = zero_entries(palette.lut)
    if (zeros < 0).all():
        return None
    bits, count = palette.bits, palette.indices.numel()
    rows, cols = grid_shape(list(palette.shape), count)
    codes = palette.indices.numpy().reshape(rows, cols)
    fill = np.repeat(zeros, count // zeros.size).reshape(rows, cols)
    mask = codes != fill
    layout, mask_data = encode_mask(mask, (rows, cols), "context")
    column = encode_column_mask(mask).view(np.uint8)
    if column.size < mask_data.size:
        layout, mask_data = "column", column
    alphabet = 2**bits - 1 if (zeros >= 0).all() else 2**bits
    kept = [(PLAIN_INDICES, pack_bits(codes[mask], bits))]
    if alphabet > 1:  # one symbol left: the kept indices carry no information (plain of 1 bit: tiny)
        for model in (m for m in kept_models if m != PLAIN_INDICES):
            symbols, contexts = _kept_streams(codes, mask, fill, model)
            kept.append((model, _encode(symbols, contexts, 1 + 2**bits, alphabet).view(np.uint8)))
    kept = [item for item in kept if item[0] in kept_models] or kept[:1]
    kept_model, kept_data = min(kept, key=lambda item: item[1].size)
    entry = [layout, int(mask_data.size), int(mask.sum()), kept_model]
    return entry, np.concatenate([mask_data, kept_data])


def decode_masked_coded(
    entry: list[object], data: np.ndarray, palette_shape: list[int], lut: Tensor, bits: int, where: str
) -> np.ndarray:
    """Every point's index (flat uint8) from a masked entry ``[mask layout, mask bytes, kept, model]``."""
    layout, mask_bytes, kept, kept_model = entry
    groups, k = lut.shape[0], 2**bits
    count = int(np.prod(palette_shape)) // lut.shape[-1]
    rows, cols = grid_shape(palette_shape, count)
    if not isinstance(mask_bytes, int) or not 0 <= mask_bytes <= data.size:
        raise CheckpointError(f"{where}: the mask of a masked palette is longer than its data")
    mask_data, kept_data = data[:mask_bytes], data[mask_bytes:]
    if layout == "column":
        if mask_data.size % 4:
            raise CheckpointError(f"{where}: coded data is not a whole number of 32-bit words")
        try:
            mask = decode_column_mask(np.ascontiguousarray(mask_data).view(np.uint32), rows, cols)
        except (ValueError, RuntimeError, OverflowError, AssertionError) as exc:  # constriction asserts
            raise CheckpointError(f"{where}: the entropy-coded data is corrupt ({exc})") from None
    else:
        mask = decode_mask(str(layout), mask_data, (rows, cols), where).reshape(rows, cols)
    if int(mask.sum()) != kept:
        raise CheckpointError(f"{where}: the palette mask keeps {int(mask.sum())} points, not {kept}")
    zeros = zero_entries(lut)
    fill = np.repeat(zeros, count // groups).reshape(rows, cols)
    if (fill[~mask] < 0).any():
        raise CheckpointError(f"{where}: the palette mask drops points of a group whose table has no zero")
    codes = np.where(mask, 0, fill).astype(np.uint8)
    if kept_model == PLAIN_INDICES:
        if kept_data.size != packed_nbytes(kept, bits):
            expected = packed_nbytes(kept, bits)
            raise CheckpointError(f"{where}: packed kept indices hold {kept_data.size} bytes, not {expected}")
        codes[mask] = unpack_bits(kept_data, bits, kept)
        if (codes[mask] == fill[mask]).any():
            raise CheckpointError(f"{where}: a kept index is its group's zero entry: the file is corrupt")
        return codes.reshape(-1)
    if kept_data.size % 4:
        raise CheckpointError(f"{where}: coded data is not a whole number of 32-bit words")
    alphabet = k - 1 if (zeros >= 0).all() else k
    if alphabet <= 1:  # never written: one symbol left is stored plain
        raise CheckpointError(f"{where}: coded kept indices of a palette with one nonzero entry")
    try:
        row = _decoder(np.ascontiguousarray(kept_data).view(np.uint32), 1 + k, alphabet)
        for r in range(rows):
            keep = mask[r]
            ctx = 1 + codes[r - 1, keep].astype(np.int64) if r and kept_model == "context" else None
            symbols = row(ctx if ctx is not None else np.zeros(int(keep.sum()), dtype=np.int64))
            zero = fill[r, keep]
            full = np.where((zero >= 0) & (symbols >= zero), symbols + 1, symbols)
            if full.size and full.max() >= k:
                raise CheckpointError(f"{where}: a kept index lies outside its {k}-entry palette")
            codes[r, keep] = full
        row(None)
    except (ValueError, RuntimeError, OverflowError, AssertionError) as exc:  # constriction asserts
        raise CheckpointError(f"{where}: the entropy-coded data is corrupt ({exc})") from None
    return codes.reshape(-1)
