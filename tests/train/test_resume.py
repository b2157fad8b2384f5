"""Resume: bitwise the same weights as an uninterrupted run, even after SIGKILL; bad checkpoints refused."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import torch
from torch import nn

from netsculpt.errors import CheckpointError, ConfigError
from netsculpt.train import TrainConfig, load_checkpoint, train

from . import _tiny
from ._sigkill import kill_parked_worker

CONFIG = TrainConfig(epochs=3, lr=0.1, warmup_epochs=1)
RESUME_INIT = 99


def _straight(config: TrainConfig = CONFIG, init_seed: int = 0) -> nn.Module:
    train_loader, test_loader = _tiny.loaders()
    model = _tiny.model(init_seed)
    train(model, train_loader, test_loader, config)
    return model


def _interrupted(out_dir: Path, stop_after: int) -> None:
    train_loader, test_loader = _tiny.loaders()
    train(
        _tiny.model(),
        train_loader,
        test_loader,
        CONFIG,
        out_dir=out_dir,
        on_epoch_end=lambda record: record["epoch"] == stop_after,
    )


def _resume(out_dir: Path, config: TrainConfig = CONFIG) -> tuple[nn.Module, object]:
    # fresh objects and a different initialisation: everything must come from the checkpoint
    train_loader, test_loader = _tiny.loaders()
    model = _tiny.model(seed=RESUME_INIT)
    torch.manual_seed(12345)  # scramble the global stream too
    result = train(model, train_loader, test_loader, config, out_dir=out_dir, resume=True)
    return model, result


def test_resume_ends_with_bitwise_same_weights(tmp_path: Path) -> None:
    reference = _straight()
    _interrupted(tmp_path, stop_after=2)
    assert load_checkpoint(tmp_path / "checkpoint.pt")["epoch"] == 2
    resumed, result = _resume(tmp_path)
    _tiny.assert_same_weights(reference, resumed)
    assert result.resumed_from == 2 and result.epochs_run == 3
    assert [h["epoch"] for h in result.history] == [1, 2, 3]


def test_resume_of_a_finished_run_trains_nothing(tmp_path: Path) -> None:
    _interrupted(tmp_path, stop_after=3)
    before = load_checkpoint(tmp_path / "checkpoint.pt")
    model, result = _resume(tmp_path)
    assert result.resumed_from == 3 and result.epochs_run == 3
    assert all(torch.equal(v, before["model"][k]) for k, v in model.state_dict().items())


def test_resume_without_checkpoint_starts_fresh(tmp_path: Path) -> None:
    model, result = _resume(tmp_path / "new")
    assert result.resumed_from is None and result.epochs_run == 3
    _tiny.assert_same_weights(_straight(init_seed=RESUME_INIT), model)


def test_corrupt_checkpoint_is_refused_and_left_alone(tmp_path: Path) -> None:
    _interrupted(tmp_path, stop_after=1)
    path = tmp_path / "checkpoint.pt"
    good = path.read_bytes()
    weights = (tmp_path / "model.safetensors").read_bytes()  # written when the callback stopped the run
    for damaged in (b"not a zip file at all", good[: len(good) // 2]):
        path.write_bytes(damaged)
        with pytest.raises(CheckpointError, match=r"cannot read|is truncated or damaged"):
            _resume(tmp_path)
        assert path.read_bytes() == damaged
        assert (tmp_path / "model.safetensors").read_bytes() == weights


def test_foreign_checkpoints_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    torch.save({"state_dict": _tiny.model().state_dict()}, path)
    with pytest.raises(CheckpointError, match="not a netsculpt training checkpoint"):
        _resume(tmp_path)
    torch.save({"opaque": nn.Linear(2, 2)}, path)  # a pickled module: must never be unpickled
    with pytest.raises(CheckpointError, match="weights_only=True"):
        _resume(tmp_path)


def test_changed_config_or_architecture_is_refused(tmp_path: Path) -> None:
    _interrupted(tmp_path, stop_after=1)
    before = (tmp_path / "checkpoint.pt").read_bytes()
    with pytest.raises(ConfigError, match=r"lr: 0.1 -> 0.2"):
        _resume(tmp_path, CONFIG.replace(lr=0.2))
    train_loader, test_loader = _tiny.loaders()
    wider = nn.Sequential(nn.Linear(_tiny.DIM, 32), nn.ReLU(), nn.Linear(32, _tiny.NUM_CLASSES))
    with pytest.raises(CheckpointError, match="do not fit this Sequential"):
        train(wider, train_loader, test_loader, CONFIG, out_dir=tmp_path, resume=True)
    assert (tmp_path / "checkpoint.pt").read_bytes() == before


@pytest.mark.slow
def test_resume_after_sigkill_mid_epoch(tmp_path: Path) -> None:
    marker = tmp_path / "parked"
    returncode = kill_parked_worker(tmp_path / "run", marker, "3")
    assert returncode == -signal.SIGKILL
    # the worker parked in epoch 2, so the only checkpoint on disk is epoch 1's
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["epoch"] == 1
    assert not (tmp_path / "run" / "model.safetensors").exists()
    train_loader, test_loader = _tiny.loaders()
    resumed = _tiny.model(seed=5)
    config = TrainConfig(epochs=3, lr=0.1)
    result = train(resumed, train_loader, test_loader, config, out_dir=tmp_path / "run", resume=True)
    assert result.resumed_from == 1
    _tiny.assert_same_weights(_straight(config), resumed)
