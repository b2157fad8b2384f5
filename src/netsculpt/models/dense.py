"""Small dense-prediction models for the digits canvases, buildable by name (recipes, CLI).

``fcos_slim`` is torchvision's FCOS (its head, GroupNorm towers, losses and box decoding unchanged) on a
slim 4-stage conv backbone with a 64-channel FPN (P3-P7): small enough to train from scratch on 2 CPU
cores, on 1-channel canvases of ``image_size`` px (``benchmarks/detection.py`` trains it on 128 px
``digits_detect``). ``lraspp_gray`` is torchvision's LR-ASPP on MobileNetV3-Small (width 0.5) from random
init, a gray image repeated to 3 channels, returning the ``out`` map. Both are plain torchvision
modules: nothing of netsculpt is in them.
"""

from __future__ import annotations

import torch
from torch import nn

from netsculpt.models.registry import register_model

DIGITS_CLASSES = 11  # background + 10 digits
DENSE_MODELS = ("fcos_slim", "lraspp_gray")  # not classifiers: the zoo's logits tests skip them


def _cbr(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


@register_model("fcos_slim", input_shape=(1, 128, 128), num_classes=DIGITS_CLASSES, in_channels=1)
def fcos_slim(num_classes: int, in_channels: int, image_size: int = 128, fpn_channels: int = 64) -> nn.Module:
    """FCOS on a 4-stage backbone (16-32 / 64 / 96 / 128 channels, strides 8 / 16 / 32 for P3-P5)."""
    from torchvision.models.detection import FCOS
    from torchvision.models.detection.backbone_utils import BackboneWithFPN
    from torchvision.ops.feature_pyramid_network import LastLevelP6P7

    body = nn.Sequential()
    body.add_module("stem", nn.Sequential(_cbr(in_channels, 16, 2), _cbr(16, 32, 2)))
    body.add_module("c3", nn.Sequential(_cbr(32, 64, 2), _cbr(64, 64, 1)))
    body.add_module("c4", nn.Sequential(_cbr(64, 96, 2), _cbr(96, 96, 1)))
    body.add_module("c5", nn.Sequential(_cbr(96, 128, 2), _cbr(128, 128, 1)))
    backbone = BackboneWithFPN(
        body, {"c3": "0", "c4": "1", "c5": "2"}, [64, 96, 128], fpn_channels,
        extra_blocks=LastLevelP6P7(fpn_channels, fpn_channels),
    )  # fmt: skip
    return FCOS(
        backbone, num_classes=num_classes, min_size=image_size, max_size=image_size,
        image_mean=[0.0] * in_channels, image_std=[1.0] * in_channels,
    )  # fmt: skip


class GraySegmenter(nn.Module):
    """LR-ASPP on a gray canvas: the image is repeated to 3 channels, the output is the ``out`` map.
    The backbone is MobileNetV3-Small at ``width`` (0.5: 13 MMACs at 128 px), dilated as torchvision's
    ``lraspp_mobilenet_v3_large`` builds its own."""

    def __init__(self, width: float = 0.5, num_classes: int = DIGITS_CLASSES) -> None:
        super().__init__()
        from torchvision.models import mobilenet_v3_small
        from torchvision.models.segmentation.lraspp import _lraspp_mobilenetv3

        backbone = mobilenet_v3_small(weights=None, width_mult=width, dilated=True)
        self.net = _lraspp_mobilenetv3(backbone, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.expand(-1, 3, -1, -1))["out"]


@register_model("lraspp_gray", input_shape=(1, 128, 128), num_classes=DIGITS_CLASSES, in_channels=1)
def lraspp_gray(num_classes: int, in_channels: int, width: float = 0.5) -> nn.Module:
    if in_channels != 1:
        from netsculpt.errors import ConfigError

        raise ConfigError(f"lraspp_gray takes 1-channel images, got in_channels={in_channels}")
    return GraySegmenter(width, num_classes)
