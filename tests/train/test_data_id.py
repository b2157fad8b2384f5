"""Resume refuses other training data: before, only the batch count per epoch was compared, so another
dataset of the same size silently continued the old weights on new images."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import Subset

from netsculpt.data import make_loaders
from netsculpt.errors import ConfigError
from netsculpt.models import create_model
from netsculpt.train import TrainConfig, train

# 64 images in batches of 32: two batches per epoch from either dataset, so the batch count cannot tell
LIMIT, BATCH = 64, 32


def _loaders(name: str, **kw):
    return make_loaders(name, batch_size=BATCH, limit=LIMIT, augment=True, **kw)


def _run(out_dir: Path, loaders, epochs: int, resume: bool = False) -> None:
    torch.manual_seed(0)
    model = create_model("lenet5", num_classes=10, in_channels=1)
    config = TrainConfig(epochs=epochs, lr=0.01, warmup_epochs=0, batch_size=BATCH)
    train(model, *loaders, config, out_dir=out_dir, resume=resume)


def test_resuming_on_another_dataset_of_the_same_size_is_refused(tmp_path: Path) -> None:
    _run(tmp_path, _loaders("mnist5k"), epochs=1)
    with pytest.raises(ConfigError, match=r"training data differs .*resume with the same dataset"):
        _run(tmp_path, _loaders("digits", resize=28), epochs=2, resume=True)


def test_resuming_on_the_same_data_still_continues(tmp_path: Path) -> None:
    _run(tmp_path, _loaders("mnist5k"), epochs=1)
    _run(tmp_path, _loaders("mnist5k"), epochs=2, resume=True)  # no error: same images, same order


def test_the_fingerprint_sees_through_subsets_and_moves_no_generator() -> None:
    from netsculpt.train.data_id import data_fingerprint

    train_loader, _ = _loaders("mnist5k")
    before = [g.get_state() for g in (train_loader.generator, train_loader.dataset.generator)]
    whole = data_fingerprint(train_loader)
    after = [g.get_state() for g in (train_loader.generator, train_loader.dataset.generator)]
    assert whole is not None and whole["samples"] == LIMIT
    assert all(torch.equal(a, b) for a, b in zip(before, after))  # no augmented sample was drawn
    head = torch.utils.data.DataLoader(Subset(train_loader.dataset, range(10)), batch_size=BATCH)
    assert data_fingerprint(head)["samples"] == 10 and data_fingerprint(head) != whole


def test_the_fingerprint_sees_through_a_concat_dataset() -> None:
    """A ConcatDataset gave None (checked by batch count only), so resuming on
    ConcatDataset([train, extra]) with another extra set of the same size went on silently."""
    from torch.utils.data import ConcatDataset, DataLoader

    from netsculpt.train.data_id import data_fingerprint

    mnist = _loaders("mnist5k")[0].dataset.dataset  # the ImageDataset under RandomShift
    digits = _loaders("digits", resize=28)[0].dataset.dataset

    def fp(dataset):
        return data_fingerprint(DataLoader(dataset, batch_size=BATCH))

    with_mnist, with_digits = fp(ConcatDataset([mnist, mnist])), fp(ConcatDataset([mnist, digits]))
    assert with_mnist is not None and with_mnist["samples"] == 2 * LIMIT
    assert with_digits is not None and with_digits != with_mnist
    assert fp(ConcatDataset([mnist, digits])) == with_digits  # the same data hashes the same
    # which part serves each sample counts: the same samples in another interleaving differ
    both = ConcatDataset([mnist, digits])
    assert fp(Subset(both, [0, LIMIT])) != fp(Subset(both, [LIMIT, 0]))
    assert fp(Subset(both, [0, LIMIT]))["samples"] == 2
