"""Folding is exact in eval mode and replays from plain data."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

import netsculpt as ns
from netsculpt.errors import PruningError
from netsculpt.surgery.fold import fold_, why_not
from tests.depth.conftest import randomise_bn


def test_resnet18_bn_fold_exact(tmp_path) -> None:
    model = randomise_bn(torchvision.models.resnet18(num_classes=7))
    x = torch.randn(2, 3, 64, 64)
    folded = ns.fold(model, x)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    with torch.no_grad():
        ref = model(x)
        assert (folded(x) - ref).abs().max() <= 1e-4 * max(1.0, float(ref.abs().max()))
    ns.save(folded, tmp_path / "f")
    again = ns.load(tmp_path / "f", model=torchvision.models.resnet18(num_classes=7))
    with torch.no_grad():
        assert torch.equal(again(x), folded(x))


class Chain(nn.Module):
    """conv3x3 -> BN -> conv1x1 (merge kxk into 1x1), then conv1x1 (no bias) -> conv3x3 (1x1 into kxk)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.b = nn.Conv2d(8, 6, 1)
        self.c = nn.Conv2d(6, 5, 1, bias=False)
        self.d = nn.Conv2d(5, 4, 3, padding=1, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.b(self.bn(self.a(x)))
        return self.d(self.c(torch.relu(y)))


def test_linear_conv_merges_exact(tmp_path) -> None:
    model = randomise_bn(Chain())
    x = torch.randn(2, 3, 12, 12)
    folded = ns.fold(model, x)
    merges = folded.netsculpt_spec["edits"][-1]["merges"]
    assert [m["op"] for m in merges] == ["bn", "conv", "conv"]
    assert sum(isinstance(m, nn.Conv2d) for m in folded.modules()) == 2
    with torch.no_grad():
        assert (folded(x) - model(x)).abs().max() <= 1e-4
    ns.save(folded, tmp_path / "f")
    again = ns.load(tmp_path / "f", model=Chain())
    with torch.no_grad():
        assert torch.equal(again(x), folded(x))


def test_inexact_merge_refused() -> None:
    a, b = nn.Conv2d(3, 4, 1, bias=True), nn.Conv2d(4, 4, 3, padding=1)
    assert "border would differ" in why_not(a, b, "conv")
    assert "neither conv" in why_not(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 3), "conv")
    model = nn.Sequential(a, b)
    with pytest.raises(PruningError, match="cannot fold 0 -> 1"):
        fold_(model, [{"op": "conv", "first": "0", "second": "1"}])


def test_fold_then_prune_depth_composes(tmp_path) -> None:
    model = randomise_bn(ns.create_model("resnet20_cifar", num_classes=10))
    x = torch.randn(2, 3, 32, 32)
    small = ns.fold(ns.prune_depth(model, x, blocks=["layer2.1"]), x)
    with torch.no_grad():
        assert (small(x) - ns.prune_depth(model, x, blocks=["layer2.1"])(x)).abs().max() <= 1e-4
    ns.save(small, tmp_path / "m")
    with torch.no_grad():
        assert torch.equal(ns.load(tmp_path / "m")(x), small(x))
