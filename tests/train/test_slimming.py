"""Network slimming's bn_l1: lambda * sign(gamma) on top of the task gradient, bitwise resume, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from netsculpt.errors import ConfigError, NetsculptWarning
from netsculpt.train import TrainConfig, train
from netsculpt.train.slimming import add_bn_l1_, bn_scales

from . import _tiny

LAM = 0.01


def _bn_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Linear(_tiny.DIM, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, _tiny.NUM_CLASSES)
    )
    with torch.no_grad():  # both signs and an exact zero: sign(0) = 0 adds nothing
        model[1].weight.copy_(torch.linspace(-1, 1, 17)[torch.arange(17) != 8])
        model[1].weight[3] = 0.0
    return model


def _one_step(bn_l1: float) -> tuple[nn.Module, nn.Module]:
    """One plain SGD step (no momentum, decay or schedule) on one fixed batch from the same init."""
    config = TrainConfig(epochs=1, lr=0.5, momentum=0.0, nesterov=False, weight_decay=0.0,
                         schedule="constant", bn_l1=bn_l1)  # fmt: skip
    train_loader, test_loader = _tiny.loaders(batch_size=192, jitter=0.0)
    model = _bn_model()
    before = _bn_model()
    train(model, train_loader, test_loader, config)
    return model, before


def test_gradient_is_task_gradient_plus_lambda_sign_gamma() -> None:
    plain, before = _one_step(0.0)
    slim, _ = _one_step(LAM)
    gamma = before[1].weight.detach()
    # gamma' = gamma - lr * (g_task + lam * sign(gamma)): the runs differ by exactly lr * lam * sign(gamma)
    torch.testing.assert_close(slim[1].weight - plain[1].weight, -0.5 * LAM * torch.sign(gamma))
    assert slim[1].weight[3] == plain[1].weight[3]
    for key in ("0.weight", "1.bias", "3.weight"):  # nothing else is touched
        assert torch.equal(slim.state_dict()[key], plain.state_dict()[key]), key


def test_add_bn_l1_creates_a_missing_gradient() -> None:
    w = nn.Parameter(torch.tensor([2.0, -0.5, 0.0]))
    add_bn_l1_([w], 0.1)
    torch.testing.assert_close(w.grad, torch.tensor([0.1, -0.1, 0.0]))
    add_bn_l1_([w], 0.1)
    torch.testing.assert_close(w.grad, torch.tensor([0.2, -0.2, 0.0]))


def test_resume_with_bn_l1_is_bitwise(tmp_path: Path) -> None:
    config = TrainConfig(epochs=3, lr=0.1, warmup_epochs=1, bn_l1=LAM)
    reference = _bn_model()
    train(reference, *_tiny.loaders(), config)
    train(_bn_model(), *_tiny.loaders(), config, out_dir=tmp_path, on_epoch_end=lambda r: r["epoch"] == 2)
    resumed = _bn_model(seed=99)
    result = train(resumed, *_tiny.loaders(), config, out_dir=tmp_path, resume=True)
    assert result.resumed_from == 2
    _tiny.assert_same_weights(reference, resumed)
    with pytest.raises(ConfigError, match=r"bn_l1"):  # a resume with another lambda is refused
        train(_bn_model(), *_tiny.loaders(), config.replace(bn_l1=LAM / 2), out_dir=tmp_path, resume=True)


@pytest.mark.parametrize("bad", [-1e-4, float("nan"), float("inf"), True, "1e-4", 1.0])
def test_bad_bn_l1_is_refused(bad: object) -> None:
    with pytest.raises(ConfigError, match="bn_l1"):
        TrainConfig(bn_l1=bad)  # type: ignore[arg-type]


def test_bn_l1_on_a_model_without_batchnorm_names_it() -> None:
    with pytest.raises(ConfigError, match=r"Sequential has no trainable affine BatchNorm.*bn_l1=0"):
        train(_tiny.model(), *_tiny.loaders(), TrainConfig(epochs=1, bn_l1=LAM))


def test_config_round_trips_and_old_configs_load() -> None:
    config = TrainConfig(bn_l1=LAM)
    assert TrainConfig.from_dict(config.to_dict()) == config
    old = {k: v for k, v in TrainConfig().to_dict().items() if k != "bn_l1"}
    assert TrainConfig.from_dict(old).bn_l1 == 0.0


def test_distill_applies_bn_l1_too() -> None:
    """distill() trains through the same loop: with alpha=0 it is train() bitwise, penalty included."""
    from netsculpt.train import DistillConfig, distill

    config = TrainConfig(epochs=1, lr=0.1, bn_l1=LAM)
    trained, distilled, plain = _bn_model(), _bn_model(), _bn_model()
    train(trained, *_tiny.loaders(), config)
    distill(distilled, _bn_model(seed=5).eval(), *_tiny.loaders(), config, DistillConfig(alpha=0.0))
    train(plain, *_tiny.loaders(), config.replace(bn_l1=0.0))
    _tiny.assert_same_weights(trained, distilled)
    assert not torch.equal(trained[1].weight, plain[1].weight)


def _pinned_bn_model() -> nn.Module:
    """The last BatchNorm normalises the logits: its channels are the model's output and no prune can
    remove them, so network slimming leaves it alone (Liu et al. 2017 and Torch-Pruning penalise only
    prunable channels)."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(_tiny.DIM, 16),
        nn.BatchNorm1d(16),
        nn.ReLU(),
        nn.Linear(16, _tiny.NUM_CLASSES),
        nn.BatchNorm1d(_tiny.NUM_CLASSES),
    )


def test_only_the_batchnorms_a_prune_can_narrow_are_penalised() -> None:
    config = TrainConfig(epochs=1, lr=0.5, momentum=0.0, nesterov=False, weight_decay=0.0,
                         schedule="constant")  # fmt: skip
    runs = {}
    for lam in (0.0, LAM):
        model = _pinned_bn_model()
        train(model, *_tiny.loaders(batch_size=192, jitter=0.0), config.replace(bn_l1=lam))
        runs[lam] = model
    gamma = _pinned_bn_model()[1].weight.detach()
    torch.testing.assert_close(runs[LAM][1].weight - runs[0.0][1].weight, -0.5 * LAM * torch.sign(gamma))
    assert torch.equal(runs[LAM][4].weight, runs[0.0][4].weight)  # the output's BatchNorm: untouched


def test_without_a_trace_every_batchnorm_is_penalised_with_a_warning() -> None:
    model = _pinned_bn_model()
    everything = [model[1].weight, model[4].weight]
    with pytest.warns(NetsculptWarning, match=r"holds no input tensor .* every affine BatchNorm"):
        assert bn_scales(model, LAM) == everything
    with pytest.warns(NetsculptWarning, match=r"Sequential did not trace \(.*\), so bn_l1 penalises every"):
        assert bn_scales(model, LAM, torch.randn(2, _tiny.DIM + 1)) == everything  # the wrong width
    assert bn_scales(model, LAM, torch.randn(2, _tiny.DIM)) == [model[1].weight]


def test_a_model_whose_batchnorms_are_all_pinned_is_refused() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(_tiny.DIM, _tiny.NUM_CLASSES), nn.BatchNorm1d(_tiny.NUM_CLASSES))
    with pytest.raises(
        ConfigError, match=r"no channel of Sequential's BatchNorms \(1\) can be pruned.*bn_l1=0"
    ):
        train(model, *_tiny.loaders(), TrainConfig(epochs=1, bn_l1=LAM))


def test_finding_the_scales_leaves_the_random_streams_alone() -> None:
    """The first training batch is drawn to trace the model; the run must not see a shifted data order."""
    from netsculpt.train import ddp
    from netsculpt.train.checkpoint import capture_rng
    from netsculpt.train.losses import CrossEntropy
    from netsculpt.train.run import Run

    train_loader, test_loader = _tiny.loaders()
    loaders = {"train": train_loader, "test": test_loader}
    run = Run(_bn_model(), loaders, TrainConfig(bn_l1=LAM), CrossEntropy(), torch.device("cpu"),
              ddp.init_distributed("cpu"))  # fmt: skip
    before = capture_rng(loaders)
    run.find_bn_scales()
    after = capture_rng(loaders)
    assert run.bn_scales == [run.model[1].weight]
    assert torch.equal(before["torch"], after["torch"]) and before["numpy"]["pos"] == after["numpy"]["pos"]
    assert before["python"]["state"].equal(after["python"]["state"])
    assert all(a.equal(b) for a, b in zip(before["loaders"]["train"], after["loaders"]["train"], strict=True))
