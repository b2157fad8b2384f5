"""Tiny residual models shared by the depth tests."""

from __future__ import annotations

import pytest
import torch
from torch import nn


def randomise_bn(model: nn.Module) -> nn.Module:
    """Non-trivial running statistics, so folds and removals are tested on real numbers."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=g) - 0.5)
    return model.eval()


class CodeShortcut(nn.Module):
    """A block whose shortcut is written in forward (strided slicing + zero pad): not removable."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, 2 * c, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        short = torch.cat([x[:, :, ::2, ::2], torch.zeros_like(x[:, :, ::2, ::2])], 1)
        return torch.relu(self.conv(x) + short)


class Mixed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.down = CodeShortcut(8)
        self.head = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.down(self.stem(x)).mean((2, 3)))


@pytest.fixture
def resnet20() -> nn.Module:
    import netsculpt as ns

    return randomise_bn(ns.create_model("resnet20_cifar", num_classes=10))
