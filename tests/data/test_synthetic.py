"""``synthetic``: deterministic, shaped as asked, and learnable far above chance."""

from __future__ import annotations

import pytest
import torch

from netsculpt.data import dataset_info, load_dataset
from netsculpt.errors import DataError


def _nearest_mean_accuracy(train, test) -> float:
    x_train, y_train = train.tensors()
    x_test, y_test = test.tensors()
    means = torch.stack([x_train[y_train == k].mean(dim=0) for k in range(train.info.num_classes)])
    distances = torch.cdist(x_test.flatten(1), means.flatten(1))
    return (distances.argmin(dim=1) == y_test).float().mean().item()


def test_shapes_balance_and_determinism() -> None:
    options = {"num_classes": 4, "image_size": (12, 16), "in_channels": 2, "train_size": 40, "test_size": 12}
    train, test = load_dataset("synthetic", **options)
    assert train[0][0].shape == (2, 12, 16) and (len(train), len(test)) == (40, 12)
    assert torch.bincount(train.labels).tolist() == [10] * 4  # labels cycle through the classes
    again, _ = load_dataset("synthetic", seed=5, **options)  # load seed does not change generated data
    assert torch.equal(train.images, again.images)
    other, _ = load_dataset("synthetic", data_seed=1, **options)
    assert not torch.equal(train.images, other.images)
    assert dataset_info("synthetic", **options) == train.info


def test_declared_mean_and_std_standardise_the_data() -> None:
    train, _ = load_dataset("synthetic", train_size=2000)
    per_channel = train.images.transpose(0, 1).flatten(1)
    # info derives mean/std from the class patterns and noise level; ~1% slack from the contrast term.
    assert per_channel.mean(dim=1).abs().max() < 0.05
    assert (per_channel.std(dim=1) - 1).abs().max() < 0.05


@pytest.mark.parametrize(("size", "channels", "noise"), [(32, 3, 0.3), (8, 1, 0.5)])
def test_learnable_far_above_chance(size: int, channels: int, noise: float) -> None:
    train, test = load_dataset(
        "synthetic", image_size=size, in_channels=channels, noise=noise, train_size=500, test_size=200
    )
    # Chance is 10%; "a wide margin" here means at least five times chance for a nearest-class-mean rule
    # (the noisier 8x8 grey case is the harder one; the 32x32 RGB case is close to perfect).
    assert _nearest_mean_accuracy(train, test) >= 0.5


def test_bad_options_are_rejected() -> None:
    with pytest.raises(DataError, match="num_classes must be an int >= 2"):
        load_dataset("synthetic", num_classes=1)
    with pytest.raises(DataError, match="noise must be >= 0"):
        dataset_info("synthetic", noise=-1.0)
