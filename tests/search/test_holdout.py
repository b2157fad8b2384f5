"""``holdout_loaders``: ``order_seed`` changes the training batches (and so a fine-tune), never the split.

Repeats of a fine-tune from one base model used to pass only ``TrainConfig.seed``; the loader order came
from the split seed, so with no dropout every "seed" gave bit-identical weights (one draw reported as 3).
"""

from __future__ import annotations

import torch
from torch import nn

from netsculpt.search.holdout import holdout_loaders
from netsculpt.train import DistillConfig, TrainConfig, distill

OPTIONS = {"num_classes": 4, "image_size": (8, 8), "in_channels": 3, "train_size": 64, "test_size": 16}


def _loaders(order_seed: int | None, augment: bool = False):
    return holdout_loaders(
        "synthetic", val_size=16, batch_size=8, order_seed=order_seed, augment=augment, shift=1, **OPTIONS
    )


def _first_batches(loader, n: int = 3) -> list[torch.Tensor]:
    it = iter(loader)
    return [next(it)[0] for _ in range(n)]


def test_order_seed_changes_training_batches_only() -> None:
    train_a, held_a, test_a = _loaders(None)
    train_b, held_b, test_b = _loaders(1)
    assert torch.equal(held_a.dataset.images, held_b.dataset.images)  # same split
    assert torch.equal(test_a.dataset.images, test_b.dataset.images)
    assert torch.equal(train_a.dataset.images, train_b.dataset.images)  # same training images ...
    first_a, first_b = _first_batches(train_a), _first_batches(train_b)
    assert any(not torch.equal(a, b) for a, b in zip(first_a, first_b, strict=True))  # ... other order
    again = _first_batches(_loaders(0)[0])  # order_seed defaults to the split seed
    assert all(torch.equal(a, b) for a, b in zip(first_a, again, strict=True))


def _student() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(8, 4),
    )  # fmt: skip


def _fine_tune(seed: int) -> dict[str, torch.Tensor]:
    train_l, held, test_l = _loaders(seed, augment=True)
    teacher = _student().eval()
    student = _student()
    config = TrainConfig(epochs=1, lr=0.05, seed=seed, augment=True, augment_shift=1)
    kd = DistillConfig(temperature=4.0, alpha=0.9)
    distill(student, teacher, train_l, test_l, config, kd, val_loader=held)
    return {k: v.clone() for k, v in student.state_dict().items()}


def test_two_fine_tune_seeds_give_different_weights() -> None:
    a, b, a_again = _fine_tune(0), _fine_tune(1), _fine_tune(0)
    assert all(torch.equal(a[k], a_again[k]) for k in a)  # a seed is reproducible
    assert any(not torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())


def test_no_val_size_holds_out_500_or_a_fifth_of_a_smaller_split() -> None:
    """``val_size=None`` (the CLI's default) fits the split: 500 of a large one, a fifth of a small one
    (as recipe stages do),
    where a fixed 500 refused any ``--limit`` of 500 or less."""
    from netsculpt.search.holdout import default_val_size

    assert [default_val_size(n) for n in (5, 400, 5000, 50000)] == [1, 80, 500, 500]
    _, held, _ = holdout_loaders("synthetic", val_size=None, batch_size=8, **OPTIONS)
    assert len(held.dataset) == 12  # a fifth of 64
