"""A NaN or inf loss stops the epoch and rolls the model back to its last good state."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from netsculpt.train import CrossEntropy, NonFiniteLossError, TrainConfig, load_checkpoint, train

from . import _tiny

CONFIG = TrainConfig(epochs=3, lr=0.1)


class PoisonAt:
    """Cross-entropy, except the loss is replaced by ``value`` at one (epoch, batch), both 1-based."""

    def __init__(self, per_epoch: int, epoch: int, batch: int, value: float) -> None:
        self.per_epoch, self.at, self.value, self.calls = per_epoch, (epoch, batch), value, 0
        self.base = CrossEntropy()

    def __call__(self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor):
        epoch, batch = divmod(self.calls, self.per_epoch)
        self.calls += 1
        loss, logits = self.base(model, inputs, targets)
        if (epoch + 1, batch + 1) == self.at:
            loss = loss * self.value
        return loss, logits


def test_nan_restores_the_last_checkpoint(tmp_path: Path) -> None:
    train_loader, test_loader = _tiny.loaders()
    model = _tiny.model()
    poison = PoisonAt(len(train_loader), epoch=2, batch=3, value=float("nan"))
    with pytest.raises(NonFiniteLossError) as caught:
        train(model, train_loader, test_loader, CONFIG, out_dir=tmp_path, loss_fn=poison)
    message = str(caught.value)
    assert "loss became nan at epoch 2, batch 3/" in message
    assert "restored to the last good checkpoint" in message and "end of epoch 1" in message
    saved = load_checkpoint(tmp_path / "checkpoint.pt")
    assert saved["epoch"] == 1
    assert all(torch.equal(v, saved["model"][k]) for k, v in model.state_dict().items())
    assert caught.value.result.epochs_run == 1
    assert not (tmp_path / "model.safetensors").exists()  # a failed run does not publish final weights


def test_inf_without_out_dir_restores_start_of_epoch_weights() -> None:
    train_loader, test_loader = _tiny.loaders()
    model = _tiny.model()
    start_of_epoch_2: dict[str, torch.Tensor] = {}

    def remember(record: dict) -> None:
        if record["epoch"] == 1:
            start_of_epoch_2.update({k: v.clone() for k, v in model.state_dict().items()})

    poison = PoisonAt(len(train_loader), epoch=2, batch=4, value=float("inf"))
    with pytest.raises(NonFiniteLossError, match="its weights at the start of epoch 2"):
        train(model, train_loader, test_loader, CONFIG, loss_fn=poison, on_epoch_end=remember)
    assert all(torch.equal(v, start_of_epoch_2[k]) for k, v in model.state_dict().items())


def test_nan_in_the_first_epoch_with_out_dir_restores_initial_weights(tmp_path: Path) -> None:
    train_loader, test_loader = _tiny.loaders()
    model = _tiny.model()
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    poison = PoisonAt(len(train_loader), epoch=1, batch=2, value=float("nan"))
    with pytest.raises(NonFiniteLossError, match="start of epoch 1"):
        train(model, train_loader, test_loader, CONFIG, out_dir=tmp_path, loss_fn=poison)
    assert all(torch.equal(v, initial[k]) for k, v in model.state_dict().items())
    assert not (tmp_path / "checkpoint.pt").exists()
