"""Small dense-prediction models, each built around one coupling pattern of detectors and segmenters."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import FrozenBatchNorm2d, MultiScaleRoIAlign

from tests.graph.archs import randomize_


def frozen_(model: nn.Module) -> nn.Module:
    """Random statistics and affine in every FrozenBatchNorm2d (its buffers start as an identity)."""
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, FrozenBatchNorm2d):
            for name in ("weight", "running_var"):
                getattr(m, name).uniform_(0.5, 1.5, generator=g)
            for name in ("bias", "running_mean"):
                getattr(m, name).uniform_(-0.5, 0.5, generator=g)
    return randomize_(model)


class TinyFPNDetector(nn.Module):
    """Two-level backbone with FrozenBatchNorm2d, an FPN (lateral + output convs, top-down add), one head
    shared by both levels with a GroupNorm tower (FCOS/RetinaNet), and RoI pooling of the pyramid
    (Faster R-CNN's ``MultiScaleRoIAlign``). Takes a list of images and options, returns nested outputs."""

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.c1 = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), FrozenBatchNorm2d(8), nn.ReLU())
        self.c2 = nn.Sequential(nn.Conv2d(8, 16, 3, 2, 1, bias=False), FrozenBatchNorm2d(16), nn.ReLU())
        self.lateral = nn.ModuleList([nn.Conv2d(8, 12, 1), nn.Conv2d(16, 12, 1)])
        self.output = nn.ModuleList([nn.Conv2d(12, 12, 3, padding=1), nn.Conv2d(12, 12, 3, padding=1)])
        self.tower = nn.Sequential(nn.Conv2d(12, 16, 3, padding=1), nn.GroupNorm(4, 16), nn.ReLU())
        self.cls = nn.Conv2d(16, classes, 3, padding=1)
        self.box = nn.Conv2d(16, 4, 3, padding=1)
        self.pool = MultiScaleRoIAlign(["p0", "p1"], 2, 2)
        self.roi_fc = nn.Linear(12 * 2 * 2, 6)

    def forward(self, images: list[torch.Tensor], options: dict) -> dict:
        x = torch.stack(images)
        f1 = self.c1(x)
        f2 = self.c2(f1)
        top = self.lateral[1](f2)
        low = self.lateral[0](f1) + F.interpolate(top, size=f1.shape[-2:], mode="nearest")
        levels = [self.output[0](low), self.output[1](top)]
        heads = [self.tower(p) for p in levels]  # one tower applied to every level
        boxes = [torch.tensor([[0.0, 0.0, 8.0, 8.0], [4.0, 4.0, 16.0, 16.0]])] * len(images)
        rois = self.pool({"p0": levels[0], "p1": levels[1]}, boxes, [tuple(x.shape[-2:])] * len(images))
        return {
            "logits": [self.cls(h) for h in heads],
            "boxes": [self.box(h) for h in heads],
            "roi": self.roi_fc(rois.flatten(1)),
            "name": options.get("name"),  # a non-tensor leaf passes through
        }


def tiny_fpn_detector() -> tuple[nn.Module, tuple]:
    torch.manual_seed(0)
    model = frozen_(TinyFPNDetector()).eval()
    images = [torch.randn(3, 32, 32), torch.randn(3, 32, 32)]
    return model, (images, {"name": "tiny", "unused": None})
