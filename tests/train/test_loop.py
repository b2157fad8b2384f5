"""train(): learns, is deterministic, writes its outputs, and honours its switches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from netsculpt.errors import ConfigError, DataError
from netsculpt.train import TrainConfig, evaluate, train

from . import _tiny

FAST = TrainConfig(epochs=4, batch_size=32, lr=0.1)


def test_loss_decreases_and_the_model_learns() -> None:
    train_loader, test_loader = _tiny.loaders()
    model = _tiny.model()
    chance = 1 / _tiny.NUM_CLASSES
    result = train(model, train_loader, test_loader, FAST)
    losses = [h["train_loss"] for h in result.history]
    assert result.epochs_run == 4 and result.resumed_from is None
    assert losses[-1] < losses[0] * 0.5  # blobs 3 sigma apart: the loss should at least halve in 4 epochs
    assert result.final_acc > 0.9 > chance  # separable blobs; evaluated on 96 clean test points
    assert result.best_acc >= result.final_acc
    assert set(result.history[0]) == {
        "epoch",
        "train_loss",
        "train_acc",
        "test_loss",
        "test_acc",
        "lr",
        "seconds",
    }
    assert evaluate(model, test_loader)[0] == result.final_acc


def test_two_fresh_runs_are_bitwise_identical() -> None:
    models = []
    for _ in range(2):
        train_loader, test_loader = _tiny.loaders()
        model = _tiny.model()
        train(model, train_loader, test_loader, FAST.replace(epochs=2))
        models.append(model)
    _tiny.assert_same_weights(*models)


def test_determinism_switch_is_restored() -> None:
    before = torch.are_deterministic_algorithms_enabled()
    train_loader, test_loader = _tiny.loaders()
    train(_tiny.model(), train_loader, test_loader, FAST.replace(epochs=1))
    assert torch.are_deterministic_algorithms_enabled() == before


def test_out_dir_outputs(tmp_path: Path) -> None:
    train_loader, test_loader = _tiny.loaders()
    model = _tiny.model()
    result = train(model, train_loader, test_loader, FAST.replace(epochs=2), out_dir=tmp_path)
    assert {"checkpoint.pt", "model.safetensors", "history.json", "result.json"} <= {
        p.name for p in tmp_path.iterdir()
    }
    weights = load_file(str(tmp_path / "model.safetensors"))
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())
    history = json.loads((tmp_path / "history.json").read_text())
    assert history == result.history
    summary = json.loads((tmp_path / "result.json").read_text())
    assert TrainConfig.from_dict(summary["config"]) == FAST.replace(epochs=2)
    # no temporary files left behind by the atomic writes
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_existing_checkpoint_is_not_overwritten_without_resume(tmp_path: Path) -> None:
    train_loader, test_loader = _tiny.loaders()
    train(_tiny.model(), train_loader, test_loader, FAST.replace(epochs=1), out_dir=tmp_path)
    before = (tmp_path / "checkpoint.pt").read_bytes()
    with pytest.raises(ConfigError, match="pass resume=True"):
        train(_tiny.model(), train_loader, test_loader, FAST.replace(epochs=1), out_dir=tmp_path)
    assert (tmp_path / "checkpoint.pt").read_bytes() == before
    with pytest.raises(ConfigError, match="resume=True needs out_dir"):
        train(_tiny.model(), train_loader, test_loader, FAST, resume=True)


def test_on_epoch_end_sees_each_record_and_can_stop() -> None:
    train_loader, test_loader = _tiny.loaders()
    seen: list[int] = []

    def stop_after_two(record: dict) -> bool:
        seen.append(record["epoch"])
        return record["epoch"] == 2

    result = train(_tiny.model(), train_loader, test_loader, FAST, on_epoch_end=stop_after_two)
    assert seen == [1, 2] and result.epochs_run == 2


def test_grad_clip_and_adamw_run() -> None:
    train_loader, test_loader = _tiny.loaders()
    config = FAST.replace(epochs=2, optimizer="adamw", lr=1e-2, grad_clip=0.5, label_smoothing=0.1)
    result = train(_tiny.model(), train_loader, test_loader, config)
    assert result.history[1]["train_loss"] < result.history[0]["train_loss"]


def test_bad_batches_are_a_data_error() -> None:
    _, test_loader = _tiny.loaders()
    batches = [torch.zeros(4, _tiny.DIM)]  # inputs without targets
    with pytest.raises(DataError, match=r"each batch must be \(inputs, targets\)"):
        train(_tiny.model(), batches, test_loader, FAST.replace(epochs=1))
