"""Small models for the weights tests: real conv/linear layouts, seconds to run."""

from __future__ import annotations

import torch
from torch import nn


class TinyNet(nn.Module):
    """conv -> BN -> relu -> conv -> pool -> linear: every layer kind clustering must handle."""

    def __init__(self, classes: int = 4) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1, bias=False)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.fc = nn.Linear(64, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.conv2(x))
        return self.fc(self.pool(x).flatten(1))


def tiny_net() -> nn.Module:
    return TinyNet()
