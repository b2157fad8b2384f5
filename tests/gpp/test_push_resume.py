"""The push phase is a training phase: its counters and centroids are checkpointed, so resume is exact."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from netsculpt.errors import CheckpointError, ConfigError
from netsculpt.gpp import PushLoss
from netsculpt.train import TrainConfig, load_checkpoint, train

from ..train import _tiny

# 192 samples in batches of 40: 5 steps an epoch, odd, so the task/push parity flips every epoch
CONFIG = TrainConfig(epochs=3, batch_size=40, lr=0.05, optimizer="sgd", momentum=0.9, seed=3)


def _run(out_dir: Path | None = None, *, stop_after: int | None = None, resume: bool = False, init: int = 0):
    model = _tiny.model(init)
    loss = PushLoss("1", push_weight=0.5, momentum=0.8)
    if resume:
        torch.manual_seed(4321)  # scramble the global stream: the checkpoint must restore it
    train_loader, test_loader = _tiny.loaders(batch_size=40)
    result = train(
        model,
        train_loader,
        test_loader,
        CONFIG,
        out_dir=out_dir,
        resume=resume,
        loss_fn=loss,
        on_epoch_end=None if stop_after is None else (lambda record: record["epoch"] == stop_after),
    )
    return model, loss, result


def test_stopped_and_resumed_push_phase_equals_uninterrupted(tmp_path: Path) -> None:
    reference, reference_loss, _ = _run()
    assert reference_loss.step == 15 and reference_loss.pushes == 7 and set(reference_loss.centroids) == {"1"}
    _run(tmp_path, stop_after=1)
    saved = load_checkpoint(tmp_path / "checkpoint.pt")
    assert saved["epoch"] == 1 and saved["loss_runtime"]["step"] == 5 and saved["loss"]["momentum"] == 0.8
    resumed, resumed_loss, result = _run(tmp_path, resume=True, init=7)
    assert result.resumed_from == 1
    _tiny.assert_same_weights(reference, resumed)
    assert resumed_loss.step == reference_loss.step and resumed_loss.pushes == reference_loss.pushes
    assert torch.equal(resumed_loss.centroids["1"], reference_loss.centroids["1"])
    assert resumed_loss.running == reference_loss.running


def test_resume_without_the_step_counter_would_differ(tmp_path: Path) -> None:
    """The state matters: a loss that forgets its step pushes on the other batches and ends elsewhere."""
    reference, _, _ = _run()
    _run(tmp_path, stop_after=1)
    forgetful = PushLoss("1", push_weight=0.5, momentum=0.8)
    forgetful.load_runtime_state = lambda state: None  # type: ignore[method-assign]
    model = _tiny.model(7)
    train_loader, test_loader = _tiny.loaders(batch_size=40)
    train(model, train_loader, test_loader, CONFIG, out_dir=tmp_path, resume=True, loss_fn=forgetful)
    assert not torch.equal(model[0].weight, reference[0].weight)


def test_resume_with_other_push_settings_or_a_broken_state_is_refused(tmp_path: Path) -> None:
    _run(tmp_path, stop_after=1)
    train_loader, test_loader = _tiny.loaders(batch_size=40)
    other = PushLoss("1", push_weight=0.5, momentum=0.5)
    with pytest.raises(ConfigError, match=r"momentum: 0\.8 -> 0\.5"):
        train(_tiny.model(), train_loader, test_loader, CONFIG, out_dir=tmp_path, resume=True, loss_fn=other)
    with pytest.raises(CheckpointError, match="malformed"):
        PushLoss("1").load_runtime_state({"step": 1})


def test_momentum_centroids_follow_the_class_means() -> None:
    loss = PushLoss("1", momentum=0.5)
    model = _tiny.model()
    x, y = torch.randn(30, _tiny.DIM), torch.arange(30) % 3
    for _ in range(4):  # steps 1 and 3 push
        loss(model, x, y)
    with torch.no_grad():
        feats = model[1](model[0](x))
    means = torch.stack([feats[y == k].mean(0) for k in range(3)])
    assert torch.allclose(loss.centroids["1"], means, atol=1e-5)  # same batch twice: the EMA sits on its mean
    with pytest.raises(ConfigError, match="momentum"):
        PushLoss("1", momentum=1.0)


def test_push_on_several_layers_averages_their_terms() -> None:
    model = _tiny.model()
    x, y = torch.randn(30, _tiny.DIM), torch.arange(30) % 3
    both = PushLoss(["0", "1"], push_weight=1.0, task_in_push=0.0)
    one, two = (
        PushLoss("0", push_weight=1.0, task_in_push=0.0),
        PushLoss("1", push_weight=1.0, task_in_push=0.0),
    )
    for loss in (both, one, two):
        loss(model, x, y)
    pushed = [float(loss(model, x, y)[0].detach()) for loss in (both, one, two)]
    assert abs(pushed[0] - (pushed[1] + pushed[2]) / 2) < 1e-5
    with pytest.raises(ConfigError, match="distinct"):
        PushLoss(["1", "1"])
