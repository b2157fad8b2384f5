"""Deterministic, stratified index selection: fixed benchmark splits and the ``limit`` option.

Both keep every class's share of the data (as far as integer counts allow), so a 1,000-sample CI run sees
the same class balance as the full set, and both depend only on the labels and a seed, never on global RNG
state.
"""

from __future__ import annotations

import numpy as np


def _quotas(counts: np.ndarray, total: int) -> np.ndarray:
    """Share ``total`` out in proportion to ``counts`` (largest remainder, capped at each class's count)."""
    n = int(counts.sum())
    exact = counts * (total / n) if n else np.zeros_like(counts, dtype=float)
    quota = np.minimum(np.floor(exact).astype(np.int64), counts)
    remainder = total - int(quota.sum())
    # Hand out the leftover samples to classes with the largest fractional share first (ties: lower class).
    order = sorted(range(len(counts)), key=lambda k: (-(exact[k] - np.floor(exact[k])), k))
    while remainder > 0:
        progressed = False
        for k in order:
            if remainder == 0:
                break
            if quota[k] < counts[k]:
                quota[k] += 1
                remainder -= 1
                progressed = True
        if not progressed:
            break
    return quota


def stratified_subset(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Indices of ``size`` samples drawn per class in proportion to class frequency, in ascending order.

    The same ``(labels, size, seed)`` always gives the same indices.
    """
    labels = np.asarray(labels)
    if size >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    chosen = []
    for cls, quota in zip(classes, _quotas(counts, size)):
        members = np.flatnonzero(labels == cls)
        chosen.append(rng.permutation(members)[:quota])
    return np.sort(np.concatenate(chosen)) if chosen else np.arange(0)


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A fixed train/test split of ``labels``: each class contributes ``test_fraction`` of itself to test.

    Each split is returned in a seeded shuffled order, so iterating without shuffling still mixes classes
    (the bundled files are sorted by label).
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    train, test = [], []
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        n_test = round(len(members) * test_fraction)
        test.append(members[:n_test])
        train.append(members[n_test:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))
