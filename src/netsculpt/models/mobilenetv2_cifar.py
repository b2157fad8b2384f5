"""MobileNetV2 (Sandler et al. 2018) adapted to 32x32 CIFAR images.

ImageNet MobileNetV2 downsamples 32x; on a 32x32 image that leaves a 1x1 map after the third stage. As is
usual for CIFAR (e.g. the widely used pytorch-cifar training code), the stem conv and the second stage
(t=6, c=24) use stride 1 instead of 2, so the network downsamples 8x and ends on a 4x4 map. Only strides
change, so with ``num_classes=1000`` the parameter count equals ImageNet MobileNetV2's (3.50M).
"""

from __future__ import annotations

import torch
from torch import nn

from netsculpt.errors import ConfigError
from netsculpt.models.registry import register_model

# (expansion t, output channels c, repeats n, first stride s) per stage; the paper's Table 2 with the
# second stage's stride lowered from 2 to 1 for 32x32 inputs
CIFAR_STAGES: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 1),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a scaled width to a multiple of ``divisor`` without losing more than 10% (the paper's rule)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def conv_bn_relu6(
    in_channels: int, out_channels: int, kernel: int, stride: int = 1, groups: int = 1
) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU6(),
    )


class InvertedResidual(nn.Module):
    """1x1 expand → 3x3 depthwise → 1x1 linear projection; residual when the shape is unchanged."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = round(in_channels * expand_ratio)
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(conv_bn_relu6(in_channels, hidden, 1))
        layers += [
            conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden),
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        self.conv = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_residual else self.conv(x)


class MobileNetV2Cifar(nn.Module):
    """MobileNetV2 with CIFAR strides; ``width_mult`` scales every width (rounded to multiples of 8)."""

    def __init__(
        self, num_classes: int = 10, in_channels: int = 3, width_mult: float = 1.0, dropout: float = 0.2
    ) -> None:
        super().__init__()
        if width_mult <= 0:
            raise ConfigError(f"width_mult must be positive, got {width_mult}")
        channels = make_divisible(32 * width_mult)
        last_channels = make_divisible(1280 * max(1.0, width_mult))  # the head never shrinks below 1280
        self.stem = conv_bn_relu6(in_channels, channels, 3, stride=1)
        blocks: list[nn.Module] = []
        for t, c, n, s in CIFAR_STAGES:
            out_channels = make_divisible(c * width_mult)
            for i in range(n):
                blocks.append(InvertedResidual(channels, out_channels, s if i == 0 else 1, t))
                channels = out_channels
        self.features = nn.Sequential(*blocks)
        self.head = conv_bn_relu6(channels, last_channels, 1)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(last_channels, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.features(self.stem(x)))
        return self.classifier(self.dropout(self.flatten(self.avgpool(x))))


@register_model("mobilenetv2_cifar", input_shape=(3, 32, 32), num_classes=10, in_channels=3)
def mobilenetv2_cifar(
    num_classes: int, in_channels: int, width_mult: float = 1.0, dropout: float = 0.2
) -> nn.Module:
    return MobileNetV2Cifar(num_classes, in_channels, width_mult=width_mult, dropout=dropout)
