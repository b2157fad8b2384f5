"""DataSource: the one mapping from a dataset description to loaders and info (recipe and CLI share it)."""

from __future__ import annotations

import torch

from netsculpt.data import DataSource, dataset_info, make_loaders


def _epoch(loader) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = zip(*loader)
    return torch.cat(images), torch.cat(labels)


def test_loaders_are_make_loaders_with_the_sources_options() -> None:
    source = DataSource("mnist5k", resize=14, channels=3, limit=100)
    train, test = source.loaders(32, seed=5, augment=True, shift=2)
    ref_train, ref_test = make_loaders(
        "mnist5k", batch_size=32, resize=14, channels=3, limit=100, seed=5, augment=True, shift=2
    )
    for got, want in ((train, ref_train), (test, ref_test)):
        (images, labels), (ref_images, ref_labels) = _epoch(got), _epoch(want)
        assert torch.equal(images, ref_images) and torch.equal(labels, ref_labels)
    assert images.shape[1:] == (3, 14, 14)  # resize and channels reached the dataset


def test_info_matches_dataset_info() -> None:
    source = DataSource("digits", resize=16, channels=3)
    assert source.info() == dataset_info("digits", resize=16, channels=3)
    assert source.info().in_channels == 3
