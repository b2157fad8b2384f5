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


def sparse_palette_net() -> nn.Module:
    """TinyNet with fixed values (numpy's seeded generator, not torch's initialisers): ``conv1`` a 3-bit
    palette without a zero entry, ``conv2`` a 4-bit palette with 90 % of its points on the zero entry,
    ``fc`` a dense weight with 60 % exact zeros, everything else plain values. The model of the
    ``data/sparse_palette_v2`` file, written by netsculpt before sparse palettes were masked."""
    import numpy as np

    from netsculpt.weights.palette import Palette, set_palette_

    rng = np.random.default_rng(20261207)
    model = TinyNet()
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(torch.from_numpy(rng.uniform(0.5, 1.5, tensor.shape).astype(np.float32)))
        model.fc.weight.mul_(torch.from_numpy(rng.random(model.fc.weight.shape) >= 0.6))
    lut1 = torch.tensor(rng.uniform(-1, 1, (1, 8, 1)), dtype=torch.float16) + 2  # no entry is 0
    codes1 = torch.from_numpy(rng.integers(0, 8, (1, model.conv1.weight.numel())).astype(np.uint8))
    set_palette_(model.conv1, "weight", Palette(lut1, codes1, 3, tuple(model.conv1.weight.shape)))
    lut2 = torch.tensor(rng.uniform(-1, 1, (1, 16, 1)), dtype=torch.float16)
    lut2[0, 5] = 0.0  # the zero entry is not the first one
    count = model.conv2.weight.numel()
    codes2 = np.where(rng.random(count) < 0.9, 5, rng.integers(0, 16, count)).astype(np.uint8)
    set_palette_(model.conv2, "weight", Palette(lut2, torch.from_numpy(codes2)[None], 4, (16, 8, 3, 3)))
    return model
