"""Channel labels: which prunable channel ("atom") every element of a traced tensor belongs to.

A value's labels are an int64 array with the value's number of dimensions, where each dimension is either
the full size (labels vary along it) or 1 (labels are the same along it: batch, spatial, ...). ``-1``
marks elements that belong to no prunable channel. Storing labels per element, compressed by broadcasting,
is what lets one representation follow channels through convolutions, flatten-into-Linear (a channel
becomes a block of features), channel shuffle (a channel dimension split into two and transposed) and
attention head reshapes, without a special case for each.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

NO_CHANNEL = -1


def plain(ndim: int) -> np.ndarray:
    """Labels for a value with no prunable channel anywhere."""
    return np.full((1,) * ndim, NO_CHANNEL, dtype=np.int64)


def along(atoms: np.ndarray, dim: int, ndim: int) -> np.ndarray:
    """Labels that vary along ``dim`` only, taking ``atoms`` (1-D) there."""
    shape = [1] * ndim
    shape[dim] = atoms.shape[0]
    return atoms.reshape(shape)


def compress(labels: np.ndarray) -> np.ndarray:
    """Shrink every dimension along which labels are constant to size 1 (keeps arrays small)."""
    for d in range(labels.ndim):
        if labels.shape[d] > 1:
            first = np.take(labels, [0], axis=d)
            if np.array_equal(np.broadcast_to(first, labels.shape), labels):
                labels = first
    return labels


def expand_to(labels: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Materialise labels over ``shape`` (a compressed-compatible target, dims 1 or full)."""
    return np.ascontiguousarray(np.broadcast_to(labels, tuple(shape)))


def match_reshape_dims(
    in_shape: Sequence[int], out_shape: Sequence[int]
) -> list[tuple[list[int], list[int]]]:
    """Group input and output dims of a reshape into runs with equal element counts.

    Each pair ``(in_dims, out_dims)`` covers contiguous dims on both sides whose sizes multiply to the same
    number; that is the finest grouping a C-order reshape allows.
    """
    groups: list[tuple[list[int], list[int]]] = []
    i = j = 0
    n_in, n_out = len(in_shape), len(out_shape)
    while i < n_in or j < n_out:
        gi: list[int] = []
        gj: list[int] = []
        pi = pj = 1
        if i < n_in:
            gi.append(i)
            pi *= in_shape[i]
            i += 1
        if j < n_out:
            gj.append(j)
            pj *= out_shape[j]
            j += 1
        while pi != pj:
            if pi < pj:
                if i >= n_in:
                    raise ValueError(f"cannot reshape {tuple(in_shape)} into {tuple(out_shape)}")
                gi.append(i)
                pi *= in_shape[i]
                i += 1
            else:
                if j >= n_out:
                    raise ValueError(f"cannot reshape {tuple(in_shape)} into {tuple(out_shape)}")
                gj.append(j)
                pj *= out_shape[j]
                j += 1
        # absorb trailing size-1 dims into this group so they never start an empty one
        while i < n_in and in_shape[i] == 1 and (j >= n_out or out_shape[j] != 1):
            gi.append(i)
            i += 1
        while j < n_out and out_shape[j] == 1 and (i >= n_in or in_shape[i] != 1):
            gj.append(j)
            j += 1
        groups.append((gi, gj))
    return groups


def reshape_labels(
    labels: np.ndarray, in_shape: Sequence[int], out_shape: Sequence[int]
) -> tuple[np.ndarray, list[list[int]]]:
    """Labels of ``x.reshape(out_shape)`` given the labels of ``x``.

    Returns the output labels and, for every output dim group that split one channel dimension into
    several varying dims (``C -> (groups, C // groups)``), the list of those output dims, so the caller
    can tie channels across the outer factors.
    """
    groups = match_reshape_dims(in_shape, out_shape)
    full_in = [1] * len(in_shape)
    out_dims_shape: list[int] = []
    for gi, gj in groups:
        varies = any(labels.shape[d] > 1 for d in gi)
        for d in gi:
            full_in[d] = in_shape[d] if varies else 1
        out_dims_shape.extend(out_shape[d] if varies else 1 for d in gj)
    dense = expand_to(labels, full_in).reshape(out_dims_shape)
    dense = compress(dense)
    splits = []
    for _gi, gj in groups:
        vary = [d for d in gj if dense.shape[d] > 1]
        if len(vary) > 1:
            splits.append(vary)
    return dense, splits


def apply_basic_index(labels: np.ndarray, shape: Sequence[int], index: tuple) -> tuple[np.ndarray, list[int]]:
    """Apply a basic (int / slice / None / Ellipsis) index to labels of a tensor of ``shape``.

    Returns the labels of the result and the input dims that were narrowed (int index, or a slice that
    does not keep the whole dim) while their labels vary: pruning along such a dim would shift what the
    hard-coded index selects, so the caller constrains it.
    """
    n_specified = sum(1 for k in index if k is not None and k is not Ellipsis)
    expanded: list = []
    for k in index:
        if k is Ellipsis:
            expanded.extend([slice(None)] * (len(shape) - n_specified))
        else:
            expanded.append(k)
    dim = 0
    idx: list = []
    narrowed: list[int] = []
    for k in expanded:
        if k is None:
            idx.append(None)
            continue
        size = shape[dim]
        full = labels.shape[dim] > 1
        if isinstance(k, slice):
            start, stop, step = k.indices(size)
            whole = start == 0 and stop >= size and step == 1
            if full:
                idx.append(k)
                if not whole:
                    narrowed.append(dim)
            else:
                idx.append(slice(None))
        else:  # int
            idx.append(int(k) if full else 0)
            if full:
                narrowed.append(dim)
        dim += 1
    return labels[tuple(idx)], narrowed
