"""VGG-16 with batch norm for 32x32 inputs, the CIFAR baseline of most filter-pruning papers.

Thirteen 3x3 conv → BN → ReLU layers with configuration 64,64,M,128,128,M,256x3,M,512x3,M,512x3,M. The
default classifier is the one used by HRank, CHIP and HRel (Linear 512→512, BatchNorm1d, ReLU, Linear),
so parameter counts are comparable with their tables (14.98M counting conv and linear layers);
``classifier="linear"`` gives the single Linear(512, num_classes) head of many CIFAR training repos.
Convolutions have no bias: the batch norm that follows makes one redundant.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from netsculpt.errors import ConfigError
from netsculpt.models.registry import register_model

# one group per stage: conv widths, then "M" for the 2x2 max-pool that ends the stage
VGG16_CFG: tuple[int | str, ...] = (
    *(64, 64, "M"),
    *(128, 128, "M"),
    *(256, 256, 256, "M"),
    *(512, 512, 512, "M"),
    *(512, 512, 512, "M"),
)


class VGGCifar(nn.Module):
    """A VGG feature stack (``cfg``: channel counts, ``"M"`` for a 2x2 max-pool) and a small classifier.

    The features end in a global average pool, which is the identity on 32x32 inputs (the map is already
    1x1 after five pools) and lets larger inputs work unchanged.
    """

    def __init__(
        self,
        cfg: tuple[int | str, ...] = VGG16_CFG,
        num_classes: int = 10,
        in_channels: int = 3,
        classifier: Literal["bn_mlp", "linear"] = "bn_mlp",
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for item in cfg:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
                continue
            width = int(item)
            layers += [nn.Conv2d(channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
            channels = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        if classifier == "bn_mlp":
            self.classifier = nn.Sequential(
                nn.Linear(channels, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, num_classes)
            )
        elif classifier == "linear":
            self.classifier = nn.Sequential(nn.Linear(channels, num_classes))
        else:
            raise ConfigError(f"vgg classifier must be 'bn_mlp' or 'linear', got {classifier!r}")
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.flatten(self.pool(self.features(x))))


def _init_weights(model: nn.Module) -> None:
    """He initialisation for convs (the VGG/ResNet papers' choice); BN starts as the identity."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


@register_model("vgg16_bn_cifar", input_shape=(3, 32, 32), num_classes=10, in_channels=3)
def vgg16_bn_cifar(
    num_classes: int, in_channels: int, classifier: Literal["bn_mlp", "linear"] = "bn_mlp"
) -> nn.Module:
    return VGGCifar(VGG16_CFG, num_classes=num_classes, in_channels=in_channels, classifier=classifier)
