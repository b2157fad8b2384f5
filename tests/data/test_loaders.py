"""make_loaders: seeded reproducible shuffling, unshuffled test loader, label-safe augmentation."""

from __future__ import annotations

import pytest
import torch

from netsculpt.data import RandomShift, load_dataset, make_loaders
from netsculpt.data.augment import shift
from netsculpt.errors import DataError


def _epoch(loader) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = zip(*loader)
    return torch.cat(images), torch.cat(labels)


def test_same_seed_same_batches_other_seed_other_order() -> None:
    first, _ = make_loaders("mnist5k", batch_size=64, limit=200, seed=3)
    second, _ = make_loaders("mnist5k", batch_size=64, limit=200, seed=3)
    other, _ = make_loaders("mnist5k", batch_size=64, limit=200, seed=4)
    images_a, labels_a = _epoch(first)
    images_b, labels_b = _epoch(second)
    assert torch.equal(images_a, images_b) and torch.equal(labels_a, labels_b)
    assert images_a.shape == (200, 1, 28, 28) and next(iter(first))[0].shape == (64, 1, 28, 28)
    assert not torch.equal(labels_a, _epoch(other)[1])
    # Two epochs of one loader differ (the generator advances) but replay identically from a fresh loader.
    assert not torch.equal(labels_a, _epoch(first)[1])


def test_test_loader_keeps_dataset_order_and_its_own_batch_size() -> None:
    _, test_loader = make_loaders("digits", batch_size=16, test_batch_size=100, seed=9)
    _, test = load_dataset("digits")
    images, labels = _epoch(test_loader)
    assert torch.equal(labels, test.labels) and torch.equal(images, test.images)
    assert len(next(iter(test_loader))[1]) == 100


def test_unshuffled_train_loader_follows_dataset_order() -> None:
    train_loader, _ = make_loaders("digits", shuffle_train=False)
    train, _ = load_dataset("digits")
    assert torch.equal(_epoch(train_loader)[1], train.labels)


def test_augmentation_is_a_bounded_shift_and_reproducible() -> None:
    train, _ = load_dataset("mnist5k", limit=30)
    augmented = RandomShift(train, seed=0)
    assert augmented.padding == 3  # 28 // 8: shifts of up to 3 pixels
    fill = augmented.fill
    moved = 0
    for i in range(len(train)):
        image, label = augmented[i]
        assert label == train[i][1]  # label-safe: labels untouched
        # The result is one of the (2p+1)^2 shifts of the original image.
        shifts = [(dy, dx) for dy in range(-3, 4) for dx in range(-3, 4)]
        matches = [s for s in shifts if torch.equal(shift(train[i][0], *s, fill), image)]
        assert matches
        moved += matches[0] != (0, 0)
    assert moved > len(train) // 2  # 48 of 49 shifts move the image
    replay = RandomShift(train, seed=0)
    assert all(torch.equal(replay[i][0], again[0]) for i, again in enumerate(RandomShift(train, seed=0)))


def test_augmented_loaders_replay_and_leave_test_alone() -> None:
    plain_train, plain_test = make_loaders("digits", batch_size=50, limit=100, seed=1)
    aug_a, aug_test = make_loaders("digits", batch_size=50, limit=100, seed=1, augment=True)
    aug_b, _ = make_loaders("digits", batch_size=50, limit=100, seed=1, augment=True)
    images_a, labels_a = _epoch(aug_a)
    images_b, labels_b = _epoch(aug_b)
    assert torch.equal(images_a, images_b) and torch.equal(labels_a, labels_b)
    plain_images, plain_labels = _epoch(plain_train)
    assert torch.equal(labels_a, plain_labels)  # same shuffle order; only pixels moved
    assert not torch.equal(images_a, plain_images)
    assert torch.equal(_epoch(aug_test)[0], _epoch(plain_test)[0])


def test_shift_caps_the_augmentation_in_pixels() -> None:
    train, _ = load_dataset("mnist5k", limit=30)
    loader, _ = make_loaders("mnist5k", batch_size=30, limit=30, augment=True, shift=1, shuffle_train=False)
    assert loader.dataset.padding == 1
    images, labels = _epoch(loader)
    fill = loader.dataset.fill
    for i in range(len(train)):
        # every image is one of the 9 shifts of at most one pixel of the original, never a larger one
        near = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
        assert any(torch.equal(shift(train[i][0], *s, fill), images[i]) for s in near)
        assert labels[i] == train[i][1]
    unshifted, _ = make_loaders(
        "mnist5k", batch_size=30, limit=30, augment=True, shift=0, shuffle_train=False
    )
    originals = torch.stack([train[i][0] for i in range(len(train))])
    assert torch.equal(_epoch(unshifted)[0], originals)


def test_worker_processes_replay_the_same_augmented_batches() -> None:
    runs = []
    for _ in range(2):
        loader, _ = make_loaders("digits", batch_size=25, limit=100, seed=2, augment=True, num_workers=2)
        runs.append(_epoch(loader))
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])


def test_bad_loader_arguments() -> None:
    with pytest.raises(DataError, match="batch_size must be a positive int"):
        make_loaders("digits", batch_size=0)
    with pytest.raises(DataError, match="num_workers must be an int >= 0"):
        make_loaders("digits", num_workers=-1)
    with pytest.raises(DataError, match="shift must be an int >= 0"):
        make_loaders("digits", augment=True, shift=-2)
