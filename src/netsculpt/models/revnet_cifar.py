"""RevNets for 32x32 images (Gomez et al. 2017, table 1): CIFAR ResNets made of reversible blocks.

Depth 12n+2: a 3x3 stem, three stages of n blocks, an fc layer. Every block splits its channels in two
halves and computes ``y1 = x1 + F(x2)``, ``y2 = x2 + G(y1)`` with F and G each the residual function of
a basic block (conv-BN-ReLU-conv-BN) on one half, so a block holds four 3x3 convs. ``revnet38_cifar``
(widths 32/64/112) and ``revnet110_cifar`` (32/64/128) are the paper's; ``revnet26_cifar`` (n=2, widths
32/64/128) is the small one, whose convs have exactly the shapes of ``ResNetCifar(26)``'s (a half of 32
channels is a resnet stage of 16): the fair twin for accuracy comparisons.

The first block of stages 2 and 3 halves the resolution and widens the channels, so it cannot be
inverted; it runs as ordinary autograd (the paper does the same), with 1x1 conv + BN projections on both
halves, so every tensor added at a join is a conv/BN output and the channels prune like a ResNet's
(option B). All the other blocks of a stage form one :class:`~netsculpt.models.reversible.ReversibleSequence`,
whose activations are recomputed in the backward pass. Post-activation F and G (no ReLU on the sum, which
would not be invertible) and a final BN-ReLU before pooling, as in the paper's pre-activation design.
"""

from __future__ import annotations

import torch
from torch import nn

from netsculpt.errors import ConfigError
from netsculpt.models.registry import register_model
from netsculpt.models.reversible import ReversibleBlock, ReversibleSequence

PAPER_WIDTHS = {38: (32, 64, 112), 110: (32, 64, 128)}
DEFAULT_WIDTHS = (32, 64, 128)


def residual_fn(in_channels: int, channels: int, stride: int = 1) -> nn.Sequential:
    """A basic block's residual function: conv-BN-ReLU-conv-BN."""
    return nn.Sequential(
        nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(channels),
        nn.ReLU(),
        nn.Conv2d(channels, channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(channels),
    )


def _projection(in_channels: int, channels: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False), nn.BatchNorm2d(channels)
    )


class RevTransition(nn.Module):
    """The non-invertible first block of a stage: ``y1 = P1(x1) + F(x2)``, ``y2 = P2(x2) + G(y1)``."""

    def __init__(self, in_channels: int, channels: int, stride: int) -> None:
        super().__init__()
        half_in, half = in_channels // 2, channels // 2
        self.f = residual_fn(half_in, half, stride)
        self.g = residual_fn(half, half)
        self.proj1 = _projection(half_in, half, stride)
        self.proj2 = _projection(half_in, half, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        halves = x.chunk(2, dim=1)
        x1, x2 = halves[0], halves[1]
        y1 = self.proj1(x1) + self.f(x2)
        y2 = self.proj2(x2) + self.g(y1)
        return torch.cat([y1, y2], dim=1)


class RevNetCifar(nn.Module):
    """RevNet-(12n+2): stem, three stages of n reversible blocks (the first of stages 2, 3 strided)."""

    def __init__(
        self,
        depth: int,
        num_classes: int = 10,
        in_channels: int = 3,
        widths: tuple[int, int, int] | None = None,
        memory_saving: bool = True,
    ) -> None:
        super().__init__()
        if depth < 14 or (depth - 2) % 12:
            raise ConfigError(f"RevNet depth must be 12n+2 with n >= 1 (14, 26, 38, 110, ...), got {depth}")
        widths = tuple(widths or PAPER_WIDTHS.get(depth, DEFAULT_WIDTHS))  # type: ignore[assignment]
        if len(widths) != 3 or any(int(w) < 2 or int(w) % 2 for w in widths):
            raise ConfigError(f"widths must be three even channel counts (two halves each), got {widths}")
        n = (depth - 2) // 12
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU()
        stages: list[nn.Module] = []
        prev = widths[0]
        for i, width in enumerate(widths):
            parts: list[nn.Module] = []
            if width != prev or i > 0:
                parts.append(RevTransition(prev, width, stride=1 if i == 0 else 2))
            if n > len(parts):
                half = width // 2
                fns = [(residual_fn(half, half), residual_fn(half, half)) for _ in range(n - len(parts))]
                blocks = [ReversibleBlock(f, g) for f, g in fns]
                parts.append(ReversibleSequence(blocks, memory_saving=memory_saving))
            stages.append(nn.Sequential(*parts))
            prev = width
        self.layer1, self.layer2, self.layer3 = stages
        self.bn_final = nn.BatchNorm2d(prev)
        self.relu_final = nn.ReLU()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(prev, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def set_memory_saving(self, enabled: bool) -> RevNetCifar:
        """Switch every reversible sequence between recomputation and ordinary autograd (same weights)."""
        for m in self.modules():
            if isinstance(m, ReversibleSequence):
                m.memory_saving = enabled
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = self.relu_final(self.bn_final(x))
        return self.fc(self.flatten(self.avgpool(x)))


def _register(depth: int) -> None:
    @register_model(f"revnet{depth}_cifar", input_shape=(3, 32, 32), num_classes=10, in_channels=3)
    def build(
        num_classes: int,
        in_channels: int,
        widths: tuple[int, int, int] | None = None,
        memory_saving: bool = True,
    ) -> nn.Module:
        return RevNetCifar(depth, num_classes, in_channels, widths=widths, memory_saving=memory_saving)


for _depth in (26, 38, 110):
    _register(_depth)
