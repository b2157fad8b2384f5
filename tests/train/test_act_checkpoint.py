"""``checkpoint_activations``: the same weights as ordinary training, less memory, old runs resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from netsculpt.errors import ConfigError
from netsculpt.fileio import safe_torch_load, torch_save
from netsculpt.measure.memory import _LiveStorageTracker
from netsculpt.models import ReversibleSequence, create_model
from netsculpt.train import TrainConfig, load_checkpoint, train
from netsculpt.train.act_checkpoint import activation_checkpointing, checkpoint_units

from . import _tiny

CONFIG = TrainConfig(epochs=3, lr=0.1, warmup_epochs=1)


class Block(nn.Module):
    """A residual MLP block with BN and dropout: every state a recomputation could disturb."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc = nn.Linear(width, width)
        self.bn = nn.BatchNorm1d(width)
        self.drop = nn.Dropout(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop(torch.relu(self.bn(self.fc(x))))


def blocks_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(_tiny.DIM, 16), Block(16), Block(16), Block(16), nn.Linear(16, _tiny.NUM_CLASSES)
    )


def test_units_are_the_blocks() -> None:
    resnet = create_model("resnet20_cifar")
    units = checkpoint_units(resnet)
    assert len(units) == 9 and all(type(u).__name__ == "BasicBlock" for u in units)
    vgg = create_model("vgg16_bn_cifar")
    assert any(isinstance(u, nn.Sequential) for u in checkpoint_units(vgg))
    revnet = create_model("revnet26_cifar")
    units = checkpoint_units(revnet)
    assert [type(u).__name__ for u in units] == ["RevTransition", "RevTransition"]
    assert not any(isinstance(u, ReversibleSequence) for u in units)


def test_a_model_without_blocks_is_refused_with_what_to_do() -> None:
    lenet = create_model("lenet5")
    with pytest.raises(ConfigError, match=r"nn\.Sequential"), activation_checkpointing(lenet):
        pass


def test_training_gives_the_same_weights_and_leaves_the_model_clean() -> None:
    train_loader, test_loader = _tiny.loaders()
    plain = blocks_model()
    train(plain, train_loader, test_loader, CONFIG)
    train_loader, test_loader = _tiny.loaders()
    checkpointed = blocks_model()
    train(checkpointed, train_loader, test_loader, CONFIG.replace(checkpoint_activations=True))
    for (name, a), b in zip(plain.state_dict().items(), checkpointed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=name)  # BN stats and counters included
    assert all("forward" not in vars(m) for m in checkpointed.modules())


def test_the_patch_is_removed_when_training_fails() -> None:
    model = blocks_model()
    with pytest.raises(RuntimeError, match="boom"), activation_checkpointing(model) as count:
        assert count == 3 and all("forward" in vars(m) for m in model[1:4])
        raise RuntimeError("boom")
    assert all("forward" not in vars(m) for m in model.modules())


def peak_training_bytes(model: nn.Module, x: torch.Tensor, checkpointed: bool) -> int:
    tracker = _LiveStorageTracker()
    try:
        with activation_checkpointing(model, checkpointed), tracker:
            model(x).sum().backward()
    finally:
        tracker.close()
    return tracker.peak


def test_checkpointing_lowers_peak_training_memory() -> None:
    torch.manual_seed(0)
    model = create_model("resnet20_cifar").train()
    x = torch.randn(8, 3, 32, 32)
    ordinary = peak_training_bytes(model, x, False)
    checkpointed = peak_training_bytes(model, x, True)
    assert checkpointed < 0.6 * ordinary


def _interrupted(out_dir: Path, config: TrainConfig) -> None:
    train_loader, test_loader = _tiny.loaders()
    train(
        blocks_model(),
        train_loader,
        test_loader,
        config,
        out_dir=out_dir,
        on_epoch_end=lambda record: record["epoch"] == 1,
    )


def _resume(out_dir: Path, config: TrainConfig) -> nn.Module:
    train_loader, test_loader = _tiny.loaders()
    model = blocks_model(seed=99)
    train(model, train_loader, test_loader, config, out_dir=out_dir, resume=True)
    return model


def test_a_checkpoint_written_before_the_field_existed_resumes(tmp_path: Path) -> None:
    train_loader, test_loader = _tiny.loaders()
    reference = blocks_model()
    train(reference, train_loader, test_loader, CONFIG)
    _interrupted(tmp_path, CONFIG)
    path = tmp_path / "checkpoint.pt"
    old = safe_torch_load(path)
    del old["config"]["checkpoint_activations"]  # as an older netsculpt wrote it
    torch_save(path, old)
    assert "checkpoint_activations" not in load_checkpoint(path)["config"]
    _tiny.assert_same_weights(reference, _resume(tmp_path, CONFIG))


def test_resume_may_switch_checkpointing_on(tmp_path: Path) -> None:
    train_loader, test_loader = _tiny.loaders()
    reference = blocks_model()
    train(reference, train_loader, test_loader, CONFIG)
    _interrupted(tmp_path, CONFIG)
    resumed = _resume(tmp_path, CONFIG.replace(checkpoint_activations=True))
    for (name, a), b in zip(reference.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=name)


def test_config_json_without_the_field_loads() -> None:
    data = json.loads(json.dumps(CONFIG.to_dict()))
    del data["checkpoint_activations"]
    assert TrainConfig.from_dict(data) == CONFIG
    with pytest.raises(ConfigError, match="checkpoint_activations"):
        TrainConfig(checkpoint_activations="yes")  # type: ignore[arg-type]


def test_cli_flag_sets_the_field() -> None:
    from netsculpt.cli import build_parser
    from netsculpt.cli.train_cmd import preset_config

    args = build_parser().parse_args(["train", "resnet20_cifar", "--checkpoint-activations", "--out", "x"])
    assert preset_config(args, checkpoint_activations="checkpoint_activations").checkpoint_activations
    args = build_parser().parse_args(["train", "resnet20_cifar", "--out", "x"])
    assert not preset_config(args, checkpoint_activations="checkpoint_activations").checkpoint_activations


@pytest.mark.slow
def test_cli_trains_a_revnet_with_checkpointing(tmp_path: Path, capsys) -> None:
    from netsculpt.cli import main

    argv = ["--quiet", "train", "revnet26_cifar", "--data", "mnist5k", "--limit", "128", "--epochs", "1"]
    code = main([*argv, "--checkpoint-activations", "--out", str(tmp_path / "run")])
    assert code == 0 and "test accuracy" in capsys.readouterr().out
    saved = load_checkpoint(tmp_path / "run" / "checkpoints" / "checkpoint.pt")
    assert saved["config"]["checkpoint_activations"] is True


def test_recipes_take_the_field() -> None:
    from netsculpt.pipeline.recipe_stages import TrainSection

    section = TrainSection(checkpoint_activations=True)
    assert TrainConfig.preset(section.preset, **section.overrides()).checkpoint_activations
    assert "checkpoint_activations" not in TrainSection().overrides()


@pytest.mark.parametrize("first_in_place", [False, True])
def test_in_place_layers_never_open_a_segment(first_in_place: bool) -> None:
    """MobileNetV3's classifier (Linear, Hardswish, Dropout(inplace), Linear) was cut before the Dropout,
    which then overwrote the output the first segment's checkpoint kept: backward failed."""
    torch.manual_seed(0)
    layers = [nn.Linear(8, 16), nn.Hardswish(), nn.Dropout(0.2, inplace=True), nn.Linear(16, 3)]
    if first_in_place:  # the Sequential's own input is overwritten: the first segment runs on a copy
        layers = [nn.ReLU(inplace=True), *layers]
    model = nn.Sequential(nn.Linear(8, 8), nn.Sequential(*layers))
    x = torch.randn(4, 8)
    reference = [p.grad for p in _grads(model, x)]
    with activation_checkpointing(model):
        checkpointed = [p.grad for p in _grads(model, x)]
    for a, b in zip(reference, checkpointed):
        assert torch.allclose(a, b, atol=1e-6)


def _grads(model: nn.Module, x: torch.Tensor) -> list[nn.Parameter]:
    model.train().zero_grad(set_to_none=True)
    torch.manual_seed(1)  # the same dropout draw with and without checkpointing
    model(x).square().sum().backward()
    return list(model.parameters())
