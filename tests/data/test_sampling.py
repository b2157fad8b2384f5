"""Stratified subsets and splits: exact class quotas, determinism, no overlap."""

from __future__ import annotations

import numpy as np

from netsculpt.data.sampling import stratified_split, stratified_subset


def test_subset_keeps_class_proportions_exactly_when_possible() -> None:
    labels = np.repeat(np.arange(4), [50, 30, 15, 5])  # 100 samples, unbalanced
    keep = stratified_subset(labels, 20, seed=0)
    # 20% of each class: 10, 6, 3, 1.
    assert np.bincount(labels[keep]).tolist() == [10, 6, 3, 1]
    assert np.all(np.diff(keep) > 0)  # ascending, no duplicates
    assert np.array_equal(keep, stratified_subset(labels, 20, seed=0))
    assert not np.array_equal(keep, stratified_subset(labels, 20, seed=1))


def test_subset_rounding_and_tiny_limits() -> None:
    labels = np.repeat(np.arange(3), 10)
    counts = np.bincount(labels[stratified_subset(labels, 7, seed=0)], minlength=3)
    # 7 over three equal classes: 2 each plus one extra, never more than one apart.
    assert counts.sum() == 7 and counts.max() - counts.min() == 1
    assert len(stratified_subset(labels, 2, seed=0)) == 2  # fewer than the classes: still exactly 2
    assert len(stratified_subset(labels, 100, seed=0)) == 30  # limit above size: everything


def test_split_is_disjoint_complete_and_stratified() -> None:
    labels = np.repeat(np.arange(10), 500)
    train, test = stratified_split(labels, 0.2, seed=0)
    assert len(np.intersect1d(train, test)) == 0
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(5000))
    assert np.bincount(labels[test]).tolist() == [100] * 10
    again = stratified_split(labels, 0.2, seed=0)
    assert np.array_equal(train, again[0]) and np.array_equal(test, again[1])
