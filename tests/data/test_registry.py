"""The registry and public API: names, close-match errors, option checks, user-registered datasets."""

from __future__ import annotations

import pytest
import torch

from netsculpt.data import (
    DATASETS,
    DEFAULT_DATASET,
    DatasetInfo,
    RawSplits,
    dataset_info,
    list_datasets,
    load_dataset,
    make_loaders,
    register_dataset,
)
from netsculpt.errors import DataError, UnknownNameError

BUILT_IN = ["cifar10", "digits", "imagefolder", "mnist", "mnist5k", "synthetic"]
# Datasets that need no files from the user: every registry test can load these.
FILE_FREE = ["digits", "mnist5k", "synthetic"]


@pytest.fixture
def tiny_dataset():
    """Register a user dataset for one test and remove it afterwards."""
    info = DatasetInfo("tiny", 3, 2, (4, 5), (0.5, 0.5), (0.25, 0.25))

    def build(*, root=None, download=False, count: int = 9) -> RawSplits:
        images = torch.full((count, 2, 4, 5), 0.75)
        labels = torch.arange(count) % 3
        return RawSplits(images, labels, images[:3], labels[:3], info=info, classes=("a", "b", "c"))

    register_dataset("tiny")(build)
    yield info
    DATASETS._entries.pop("tiny")


def test_built_ins_are_registered_and_filterable() -> None:
    assert set(BUILT_IN) <= set(list_datasets())
    assert list_datasets("mnist*") == ["mnist", "mnist5k"]
    assert DEFAULT_DATASET == "mnist5k"


@pytest.mark.parametrize("name", FILE_FREE)
def test_every_file_free_dataset_matches_its_info(name: str) -> None:
    train, test = load_dataset(name, limit=40)
    info = dataset_info(name)
    assert train.info == info and test.info == info
    image, label = train[0]
    assert image.shape == (info.in_channels, *info.image_size) and image.dtype == torch.float32
    assert 0 <= label < info.num_classes and torch.isfinite(train.images).all()
    assert len(train) == 40 and len(test) == 40


def test_unknown_name_lists_close_matches() -> None:
    with pytest.raises(UnknownNameError, match=r"Did you mean: mnist5k, mnist") as excinfo:
        load_dataset("mnist5")
    assert "Registered:" in str(excinfo.value)
    with pytest.raises(UnknownNameError, match="cifar10"):
        dataset_info("cifar")


def test_unknown_options_name_the_accepted_ones() -> None:
    with pytest.raises(
        DataError, match="dataset 'synthetic' has no option 'num_class'; it takes: num_classes"
    ):
        load_dataset("synthetic", num_class=3)
    with pytest.raises(DataError, match="'mnist5k' has no option 'image_size'; it takes no dataset options"):
        dataset_info("mnist5k", image_size=32)


def test_limit_must_be_positive() -> None:
    for bad in (0, -3, 2.5, True):
        with pytest.raises(DataError, match="limit must be a positive int"):
            load_dataset("digits", limit=bad)


def test_limit_is_stratified_and_test_subset_ignores_seed() -> None:
    train_a, test_a = load_dataset("mnist5k", limit=100, seed=0)
    train_b, test_b = load_dataset("mnist5k", limit=100, seed=1)
    # 100 of a balanced 10-class split: exactly 10 per class in both splits.
    assert torch.bincount(train_a.labels, minlength=10).tolist() == [10] * 10
    assert torch.bincount(test_a.labels, minlength=10).tolist() == [10] * 10
    assert torch.equal(test_a.images, test_b.images)  # evaluation set fixed across run seeds
    assert not torch.equal(train_a.images, train_b.images)  # training subset follows the seed
    assert torch.equal(train_a.images, load_dataset("mnist5k", limit=100, seed=0)[0].images)


def test_user_registered_dataset_gets_all_options(tiny_dataset) -> None:
    assert "tiny" in list_datasets()
    train, test = load_dataset("tiny", count=12, resize=8, limit=6)
    assert len(train) == 6 and len(test) == 3 and train[0][0].shape == (2, 8, 8)
    assert torch.allclose(train[0][0], torch.ones(2, 8, 8))  # (0.75 - 0.5) / 0.25
    assert dataset_info("tiny", count=12) == tiny_dataset  # no static info: built to find out
    loader, _ = make_loaders("tiny", batch_size=4)
    assert next(iter(loader))[0].shape == (4, 2, 4, 5)
    with pytest.raises(ValueError, match="already registered"):
        register_dataset("tiny")(lambda **_: None)


def test_builder_that_contradicts_its_info_is_reported() -> None:
    info = DatasetInfo("liar", 2, 3, (8, 8), (0.5,) * 3, (0.5,) * 3)

    @register_dataset("liar")
    def build(*, root=None, download=False) -> RawSplits:
        images = torch.zeros(4, 1, 8, 8)  # one channel, but info says three
        return RawSplits(images, torch.zeros(4), images, torch.zeros(4), info=info)

    try:
        with pytest.raises(DataError, match=r"train images are \(1, 8, 8\) but its info says \(3, 8, 8\)"):
            load_dataset("liar")
    finally:
        DATASETS._entries.pop("liar")


def test_raw_splits_validate_labels() -> None:
    info = DatasetInfo("x", 2, 1, (2, 2), (0.0,), (1.0,))
    images = torch.zeros(2, 1, 2, 2)
    with pytest.raises(DataError, match=r"labels must lie in 0\.\.1, found 0\.\.2"):
        RawSplits(images, torch.tensor([0, 2]), images, torch.tensor([0, 1]), info=info)
    with pytest.raises(DataError, match="one label each"):
        RawSplits(images, torch.tensor([0]), images, torch.tensor([0, 1]), info=info)
    with pytest.raises(DataError, match="one value per channel"):
        DatasetInfo("y", 2, 3, (2, 2), (0.0,), (1.0,))
