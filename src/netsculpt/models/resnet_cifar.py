"""The CIFAR ResNets of He et al. 2016 (section 4.2): 6n+2 layers, three stages of 16/32/64 channels.

Where a block changes shape (first block of stages 2 and 3: stride 2, channels doubled) the shortcut
must change shape too. The paper offers two shortcuts:

* ``"B"`` (our default): a 1x1 conv + BN projection. Every tensor added at a residual join is then a
  conv/BN output, so a pruner can couple the join's channels like any other and prune them.
* ``"A"`` (the paper's CIFAR choice, parameter-free): subsample by 2 and append zero channels. The added
  channels are constants and the identity part ties input channel k to output channel k across stages of
  different widths, which a pruner must treat specially (it cannot simply drop channel k everywhere).

Parameter counts for 10 classes with option A match the paper's Table 6 (0.27M, 0.85M, 1.7M for
depths 20, 56, 110); option B adds 2,752 (two projections: 16→32 and 32→64, each conv + BN).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from netsculpt.errors import ConfigError
from netsculpt.models.registry import register_model

Shortcut = Literal["A", "B"]


class ZeroPadShortcut(nn.Module):
    """Option A: keep every ``stride``-th pixel and append ``out_channels - in_channels`` zero channels.

    Input channel k stays output channel k (zeros go at the end, as in the paper's Torch code).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.out_channels - self.in_channels))

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}"


class BasicBlock(nn.Module):
    """Two 3x3 conv/BN layers and a shortcut; ReLU after the residual sum."""

    def __init__(self, in_channels: int, channels: int, stride: int, shortcut: Shortcut) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != channels:
            if shortcut == "A":
                self.shortcut = ZeroPadShortcut(in_channels, channels, stride)
            else:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False), nn.BatchNorm2d(channels)
                )
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


class ResNetCifar(nn.Module):
    """ResNet-(6n+2) for 32x32 images: 3x3 stem, three stages of n blocks, global average pool, fc."""

    def __init__(
        self, depth: int, num_classes: int = 10, in_channels: int = 3, shortcut: Shortcut = "B"
    ) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ConfigError(f"CIFAR ResNet depth must be 6n+2 with n >= 1 (20, 56, 110, ...), got {depth}")
        if shortcut not in ("A", "B"):
            raise ConfigError(f"shortcut must be 'A' (zero-pad) or 'B' (1x1 projection), got {shortcut!r}")
        blocks = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU()
        self.layer1 = self._stage(16, 16, blocks, 1, shortcut)
        self.layer2 = self._stage(16, 32, blocks, 2, shortcut)
        self.layer3 = self._stage(32, 64, blocks, 2, shortcut)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @staticmethod
    def _stage(
        in_channels: int, channels: int, blocks: int, stride: int, shortcut: Shortcut
    ) -> nn.Sequential:
        first = BasicBlock(in_channels, channels, stride, shortcut)
        return nn.Sequential(first, *(BasicBlock(channels, channels, 1, shortcut) for _ in range(blocks - 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.flatten(self.avgpool(x)))


def _register(depth: int) -> None:
    @register_model(f"resnet{depth}_cifar", input_shape=(3, 32, 32), num_classes=10, in_channels=3)
    def build(num_classes: int, in_channels: int, shortcut: Shortcut = "B") -> nn.Module:
        return ResNetCifar(depth, num_classes=num_classes, in_channels=in_channels, shortcut=shortcut)


for _depth in (20, 56, 110):
    _register(_depth)
