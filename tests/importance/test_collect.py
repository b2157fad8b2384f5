"""The calibration pass leaves the user's model as it found it: per-module modes and gradients."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import netsculpt as ns
from tests.importance.conftest import batches


def _frozen_bn_in_training_model() -> nn.Sequential:
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10),
    )  # fmt: skip
    model.train()
    model[1].eval()  # the user froze the first BatchNorm while fine-tuning
    return model


@pytest.mark.parametrize("criterion", ["hrank", "chip", "taylor", "fisher"])
def test_calibration_keeps_each_modules_mode_and_the_users_grads(criterion: str) -> None:
    model = _frozen_bn_in_training_model()
    model[3].weight.grad = torch.ones_like(model[3].weight)  # accumulated by the user
    modes = {n: m.training for n, m in model.named_modules()}
    ns.plan_pruning(model, torch.randn(1, 3, 16, 16), criterion=criterion, data=batches((3, 16, 16)))
    assert {n: m.training for n, m in model.named_modules()} == modes
    assert torch.equal(model[3].weight.grad, torch.ones_like(model[3].weight))
    assert all(p.grad is None for n, p in model.named_parameters() if n != "3.weight")
