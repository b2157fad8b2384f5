"""evaluate(): accuracy and sample-weighted mean loss on a hand-made model and loader."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from netsculpt.errors import DataError
from netsculpt.train import evaluate


def _hand_made() -> tuple[nn.Module, DataLoader]:
    # The model passes its inputs through as logits, so each prediction is chosen by the data itself.
    # Logits put probability 1/2 (e.g. [log 2, 0, 0] -> 2/(2+1+1)) on the argmax class. 5 samples in
    # batches of 2, 2, 1: samples 0, 1, 2 are predicted right, 3 and 4 wrong.
    big = math.log(2.0)
    inputs = torch.tensor(
        [[big, 0, 0], [0, big, 0], [0, 0, big], [big, 0, 0], [0, big, 0]], dtype=torch.float32
    )
    targets = torch.tensor([0, 1, 2, 1, 2])
    return nn.Identity(), DataLoader(TensorDataset(inputs, targets), batch_size=2)


def test_accuracy_and_loss_by_hand() -> None:
    model, loader = _hand_made()
    accuracy, loss = evaluate(model, loader)
    assert accuracy == pytest.approx(3 / 5)
    # right: -log(1/2); wrong: -log(1/4). Mean over samples (not over batches of unequal size).
    assert loss == pytest.approx((3 * math.log(2) + 2 * math.log(4)) / 5)


def test_max_batches_counts_only_those_batches() -> None:
    model, loader = _hand_made()
    accuracy, loss = evaluate(model, loader, max_batches=1)
    assert accuracy == 1.0 and loss == pytest.approx(math.log(2))


def test_custom_loss_fn_is_used() -> None:
    model, loader = _hand_made()

    def zero_loss(m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.tensor(0.0), m(x)

    assert evaluate(model, loader, loss_fn=zero_loss) == (pytest.approx(0.6), 0.0)


def test_mode_is_restored_and_no_gradients_kept() -> None:
    model = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5))
    _, loader = _hand_made()
    model.train()
    first = evaluate(model, loader)
    assert model.training
    assert evaluate(model, loader) == first  # eval mode: dropout off, so two passes agree exactly
    assert all(p.grad is None for p in model.parameters())


def test_empty_loader_is_a_clear_error() -> None:
    empty = DataLoader(TensorDataset(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long)), batch_size=2)
    with pytest.raises(DataError, match="yielded no samples"):
        evaluate(nn.Identity(), empty)
