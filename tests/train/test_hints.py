"""Feature hints: adapter shapes, adapters trained but never saved with the student, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from netsculpt.errors import ConfigError
from netsculpt.train import DistillationLoss, DistillConfig, TrainConfig, distill
from netsculpt.train.hints import FeatureTap, make_adapter

from . import _tiny


class ConvNet(nn.Module):
    def __init__(self, width: int, classes: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, width, 3, padding=1)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.relu(self.conv1(x))).flatten(1))


def test_adapter_shapes_follow_the_widths() -> None:
    gen = torch.Generator().manual_seed(0)
    conv = make_adapter(torch.Size([2, 3, 8, 8]), torch.Size([2, 8, 8, 8]), ("a", "a"), gen)
    assert isinstance(conv, nn.Conv2d) and conv.weight.shape == (8, 3, 1, 1) and conv.bias is None
    linear = make_adapter(torch.Size([2, 5]), torch.Size([2, 7]), ("a", "a"), gen)
    assert isinstance(linear, nn.Linear) and linear.weight.shape == (7, 5)
    assert make_adapter(torch.Size([2, 4, 8, 8]), torch.Size([2, 4, 8, 8]), ("a", "a"), gen) is None
    with pytest.raises(ConfigError, match="spatial sizes differ"):
        make_adapter(torch.Size([2, 3, 8, 8]), torch.Size([2, 8, 4, 4]), ("a", "b"), gen)
    with pytest.raises(ConfigError, match="cannot be matched"):
        make_adapter(torch.Size([2, 3, 8, 8]), torch.Size([2, 8]), ("a", "b"), gen)


def test_loss_builds_one_adapter_per_hint_from_the_real_feature_shapes() -> None:
    student, teacher = ConvNet(3), ConvNet(8)
    loss = DistillationLoss(
        teacher,
        DistillConfig(hints=["conv1", ("relu", "relu"), "fc"]),
        student=student,
        example_inputs=torch.randn(1, 1, 6, 6),
    )
    adapters = loss.learnable.adapters
    assert [tuple(a.weight.shape) if hasattr(a, "weight") else None for a in adapters] == [
        (8, 3, 1, 1),
        (8, 3, 1, 1),
        None,  # fc: 3 classes on both sides, so no adapter
    ]


def test_unknown_layer_names_suggest_close_ones() -> None:
    with pytest.raises(ConfigError, match=r"no layer named 'conv_1'.*'conv1'"):
        DistillationLoss(
            ConvNet(8),
            DistillConfig(hints=["conv_1"]),
            student=ConvNet(3),
            example_inputs=torch.randn(1, 1, 6, 6),
        )
    with pytest.raises(ConfigError, match="need the student and example inputs"):
        DistillationLoss(ConvNet(8), DistillConfig(hints=["conv1"]))


def test_tap_removes_its_hooks() -> None:
    model = ConvNet(3)
    with FeatureTap(model, ["conv1"], "student") as tap:
        model(torch.randn(2, 1, 6, 6))
    assert tap.features["conv1"].shape == (2, 3, 6, 6)
    assert all(not m._forward_hooks for m in model.modules())


def test_adapters_are_trained_but_the_saved_student_holds_only_its_own_weights(tmp_path: Path) -> None:
    torch.manual_seed(0)
    teacher = nn.Sequential(nn.Linear(_tiny.DIM, 16), nn.ReLU(), nn.Linear(16, _tiny.NUM_CLASSES))
    student = nn.Sequential(nn.Linear(_tiny.DIM, 4), nn.ReLU(), nn.Linear(4, _tiny.NUM_CLASSES))
    student_keys = set(student.state_dict())
    kd = DistillConfig(hints=["1"], hint_weight=1.0)
    loss = DistillationLoss(
        teacher, kd, student=student, example_inputs=torch.randn(1, _tiny.DIM), seed=TrainConfig().seed
    )
    initial = loss.learnable.adapters[0].weight.detach().clone()
    train_loader, test_loader = _tiny.loaders()
    from netsculpt.train import train

    train(student, train_loader, test_loader, TrainConfig(epochs=2, lr=0.1), out_dir=tmp_path, loss_fn=loss)
    assert not torch.equal(loss.learnable.adapters[0].weight, initial)  # in the optimizer, and it moved
    assert set(load_file(str(tmp_path / "model.safetensors"))) == student_keys
    assert set(student.state_dict()) == student_keys
    assert all(not m._forward_hooks for m in student.modules())
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert set(ckpt["loss_state"]) == {"adapters.0.weight"} and ckpt["loss"]["loss"] == "distill"


def test_distill_sizes_adapters_on_a_test_sample() -> None:
    torch.manual_seed(0)
    teacher = nn.Sequential(nn.Linear(_tiny.DIM, 16), nn.ReLU(), nn.Linear(16, _tiny.NUM_CLASSES))
    student = nn.Sequential(nn.Linear(_tiny.DIM, 4), nn.ReLU(), nn.Linear(4, _tiny.NUM_CLASSES))
    train_loader, test_loader = _tiny.loaders()
    result = distill(
        student, teacher, train_loader, test_loader, TrainConfig(epochs=1, lr=0.1), DistillConfig(hints=["1"])
    )
    assert result.epochs_run == 1 and 0.0 <= result.final_acc <= 1.0
