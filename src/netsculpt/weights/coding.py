"""Context-model entropy coding of small-alphabet symbol grids (palette indices, sparsity masks).

Each tensor is coded as its 2-D view ``(rows, cols)`` (output channels x the rest), row after row, with
``constriction``'s range coder. The probability of a symbol comes from adaptive counts per *context*:
the already-decoded neighbour in the row above (the same input position of the previous output
channel), so a weight whose input is dead across filters is cheap. (Two neighbours, above and
above-left, spread the counts over k*k contexts and coded worse on the tensors tried.)
Counts start at a uniform prior and are updated after every row, which lets a decoder rebuild every
probability of a row at once from rows it already has: decoding is exact and vectorised per row.

``order0`` (one context, same row-wise adaptation) is the comparison that shows what the neighbours buy.
"""

from __future__ import annotations

import numpy as np

from netsculpt.errors import CheckpointError

PRIOR = 0.5  # Krichevsky-Trofimov: half a count per symbol before any is seen
MODELS = ("context", "order0")


def _contexts(above: np.ndarray | None, cols: int, k: int, model: str) -> np.ndarray:
    if model == "order0" or above is None:
        return np.zeros(cols, dtype=np.int64)
    return 1 + above.astype(np.int64)


def _family():  # a constriction model type
    import constriction

    return constriction.stream.model.Categorical(perfect=False)


def _probabilities(counts: np.ndarray, ctx: np.ndarray) -> np.ndarray:
    rows = counts[ctx]
    return rows / rows.sum(axis=1, keepdims=True)


def best_encoding(symbols: np.ndarray, k: int) -> tuple[str, np.ndarray]:
    """Whichever model codes ``symbols`` in fewer words (both are exact; the choice is stored)."""
    coded = [(m, encode_grid(symbols, k, m)) for m in MODELS]
    return min(coded, key=lambda item: item[1].size)


def encode_grid(symbols: np.ndarray, k: int, model: str = "context") -> np.ndarray:
    """Code a 2-D array of symbols in ``[0, k)``; returns the range coder's uint32 words."""
    import constriction

    grid = np.asarray(symbols).reshape(symbols.shape[0], -1)
    counts = np.full((1 + k, k), PRIOR, dtype=np.float64)
    encoder = constriction.stream.queue.RangeEncoder()
    family, above = _family(), None
    for row in grid:
        ctx = _contexts(above, row.size, k, model)
        encoder.encode(row.astype(np.int32), family, _probabilities(counts, ctx))
        np.add.at(counts, (ctx, row.astype(np.int64)), 1.0)
        above = row
    return encoder.get_compressed()


def decode_grid(words: np.ndarray, rows: int, cols: int, k: int, model: str = "context") -> np.ndarray:
    """Inverse of :func:`encode_grid`: a ``(rows, cols)`` uint8 array."""
    import constriction

    counts = np.full((1 + k, k), PRIOR, dtype=np.float64)
    try:
        decoder = constriction.stream.queue.RangeDecoder(np.ascontiguousarray(words, dtype=np.uint32))
        family, above = _family(), None
        out = np.empty((rows, cols), dtype=np.uint8)
        for r in range(rows):
            ctx = _contexts(above, cols, k, model)
            row = decoder.decode(family, _probabilities(counts, ctx))
            out[r] = row
            np.add.at(counts, (ctx, row.astype(np.int64)), 1.0)
            above = out[r]
    except (ValueError, RuntimeError, OverflowError, AssertionError) as exc:  # constriction asserts
        raise CheckpointError(f"the entropy-coded data is corrupt ({exc})") from None
    return out


def huffman_bits(symbols: np.ndarray, k: int) -> int:
    """Bits of a static Huffman code of ``symbols`` (the code table's cost not included: a lower bound)."""
    import heapq

    freq = np.bincount(np.asarray(symbols).reshape(-1), minlength=k)
    heap = [(int(f), i, 0) for i, f in enumerate(freq) if f]
    if len(heap) == 1:
        return int(freq.sum())
    heapq.heapify(heap)
    total, tie = 0, k
    while len(heap) > 1:
        a, _, _ = heapq.heappop(heap)
        b, _, _ = heapq.heappop(heap)
        total += a + b  # every merge adds one bit to each symbol below it
        heapq.heappush(heap, (a + b, tie, 0))
        tie += 1
    return total
