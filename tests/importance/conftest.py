"""Small models and calibration batches shared by the criterion tests."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import netsculpt as ns


def batches(shape: tuple[int, ...], n_batches: int = 2, batch: int = 16, seed: int = 0) -> list:
    """Fixed (inputs, labels) batches: a list, so every pass sees the same data in the same order."""
    gen = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(batch, *shape, generator=gen), torch.randint(0, 10, (batch,), generator=gen))
        for _ in range(n_batches)
    ]


def randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give BatchNorm layers distinct affine parameters and statistics (fresh ones are all 1/0, which
    makes every channel tie under bn_scale)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    return model.eval()


@pytest.fixture(scope="module")
def lenet() -> tuple[nn.Module, torch.Tensor, list]:
    torch.manual_seed(0)
    return ns.create_model("lenet5").eval(), torch.randn(1, 1, 28, 28), batches((1, 28, 28))


@pytest.fixture(scope="module")
def resnet20() -> tuple[nn.Module, torch.Tensor, list]:
    torch.manual_seed(0)
    model = randomize_bn(ns.create_model("resnet20_cifar"))
    return model, torch.randn(1, 3, 32, 32), batches((3, 32, 32), n_batches=1, batch=12)
