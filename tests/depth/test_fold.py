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


class LongChain(nn.Module):
    """3x3 -> BN -> 1x1 -> 1x1 -> 1x1: four linear convs in a row become one 3x3."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.b = nn.Conv2d(8, 6, 1)
        self.c = nn.Conv2d(6, 7, 1)
        self.d = nn.Conv2d(7, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.d(self.c(self.b(self.bn(self.a(x))))).mean((2, 3))


def test_chain_of_linear_convs_merges_to_one(tmp_path) -> None:
    model = randomise_bn(LongChain())
    x = torch.randn(2, 3, 10, 10)
    folded = ns.fold(model, x)
    assert sum(isinstance(m, nn.Conv2d) for m in folded.modules()) == 1
    with torch.no_grad():
        ref = model(x)
        assert (folded(x) - ref).abs().max() <= 1e-4 * max(1.0, float(ref.abs().max()))
    ns.save(folded, tmp_path / "f")
    again = ns.load(tmp_path / "f", model=LongChain())
    with torch.no_grad():
        assert torch.equal(again(x), folded(x))


class InvertedResidual(nn.Module):
    """MobileNetV2's block with both activations dropped: 1x1 expand -> depthwise 3x3 -> 1x1 project."""

    def __init__(self, c: int = 4, e: int = 12, stride: int = 1, bn_expand: bool = True) -> None:
        super().__init__()
        self.expand = nn.Conv2d(c, e, 1, bias=False)
        self.b1 = nn.BatchNorm2d(e) if bn_expand else nn.Identity()
        self.dw = nn.Conv2d(e, e, 3, stride=stride, padding=1, groups=e, bias=False)
        self.b2 = nn.BatchNorm2d(e)
        self.project = nn.Conv2d(e, c, 1, bias=False)
        self.b3 = nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b3(self.project(self.b2(self.dw(self.b1(self.expand(x))))))


@pytest.mark.parametrize(("stride", "bn_expand"), [(1, False), (2, False), (1, True)])
def test_depthwise_chain_merges_into_dense_conv(tmp_path, stride: int, bn_expand: bool) -> None:
    """Without a bias before the padded depthwise conv the whole block is one dense 3x3; with the expand
    BN folded into a bias it is not (zero padding of a biased map is not the bias): 1x1 + dense 3x3."""
    model = randomise_bn(InvertedResidual(stride=stride, bn_expand=bn_expand))
    x = torch.randn(2, 4, 9, 9)
    assert sum(isinstance(m, nn.Conv2d) for m in ns.fold(model, x).modules()) == 3  # grouped: opt-in
    folded = ns.fold(model, x, grouped=True)
    convs = [m for m in folded.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == (2 if bn_expand else 1) and all(c.groups == 1 for c in convs)
    assert convs[-1].kernel_size == (3, 3)
    with torch.no_grad():
        ref = model(x)
        assert (folded(x) - ref).abs().max() <= 1e-4 * max(1.0, float(ref.abs().max()))
    ns.save(folded, tmp_path / "f")
    again = ns.load(tmp_path / "f", model=InvertedResidual(stride=stride, bn_expand=bn_expand))
    with torch.no_grad():
        assert torch.equal(again(x), folded(x))


def test_grouped_conv_pairs_merge_exactly() -> None:
    from netsculpt.surgery.fold import _merge_convs

    torch.manual_seed(0)
    x = torch.randn(2, 8, 7, 7)
    for first, second in [
        (nn.Conv2d(8, 12, 3, padding=1, groups=4), nn.Conv2d(12, 6, 1, groups=3)),
        (nn.Conv2d(8, 12, 1, groups=2, bias=False), nn.Conv2d(12, 6, 3, padding=1, groups=2)),
        (nn.Conv2d(8, 8, 5, padding=2, groups=8), nn.Conv2d(8, 5, 1)),
    ]:
        assert not why_not(first, second, "conv")
        with torch.no_grad():
            assert (_merge_convs(first, second)(x) - second(first(x))).abs().max() <= 1e-4


class _LinearNorm(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(6, 4)
        self.norm = nn.BatchNorm1d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.linear(x))


@pytest.mark.parametrize("shape", [(3, 6), (3, 4, 6)], ids=["features", "sequence"])
def test_linear_norm_folds_only_where_the_norm_reads_the_linear_features(shape) -> None:
    """On (N, L, F) BatchNorm1d normalises L, not the linear's F: folding there changed the outputs."""
    torch.manual_seed(0)
    model = _LinearNorm()
    with torch.no_grad():
        model.norm.running_mean.normal_(0, 1), model.norm.running_var.uniform_(0.2, 3)
    model.eval()
    x = torch.randn(*shape)
    folded = ns.fold(model, x)
    with torch.no_grad():
        assert (folded(x) - model(x)).abs().max() <= 1e-5
    assert isinstance(folded.norm, nn.Identity) == (len(shape) == 2)


def test_same_padding_folds_or_says_why() -> None:
    assert "border would differ" in why_not(nn.Conv2d(3, 4, 1), nn.Conv2d(4, 5, 3, padding="same"), "conv")
    assert "even kernel" in why_not(
        nn.Conv2d(3, 4, 1, bias=False), nn.Conv2d(4, 5, 2, padding="same"), "conv"
    )
    model = nn.Sequential(nn.Conv2d(3, 4, 1, bias=False), nn.Conv2d(4, 5, 3, padding="same")).eval()
    x = torch.randn(2, 3, 9, 9)
    folded = ns.fold(model, x)
    assert sum(isinstance(m, nn.Conv2d) for m in folded.modules()) == 1
    with torch.no_grad():
        assert (folded(x) - model(x)).abs().max() <= 1e-5


class Bottleneck(nn.Module):
    """A linear bottleneck (MobileNetV2's last block into its 1x1 head): 24 -> 8 -> 32, no activation."""

    def __init__(self) -> None:
        super().__init__()
        self.project, self.bn = nn.Conv2d(24, 8, 1, bias=False), nn.BatchNorm2d(8)
        self.head = nn.Conv2d(8, 32, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.bn(self.project(x)))


def test_a_merge_that_would_cost_more_macs_is_left_alone() -> None:
    """Merging 24 -> 8 -> 32 makes one 24 -> 32 conv: 768 weights for 448 (MobileNetV2 grew 2.24 -> 2.73 M
    params by fold's defaults); the BatchNorm still folds."""
    model, x = randomise_bn(Bottleneck()), torch.randn(2, 24, 6, 6)
    folded = ns.fold(model, x)
    assert [m["op"] for m in folded.netsculpt_spec["edits"][-1]["merges"]] == ["bn"]
    assert sum(p.numel() for p in folded.parameters()) < sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        assert (folded(x) - model(x)).abs().max() <= 1e-4


@pytest.mark.parametrize("option", ["convs", "grouped", "inplace"])
def test_flags_must_be_booleans(option: str) -> None:
    # convs="no" is truthy: it merged convs it was asked not to
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)).eval()
    with pytest.raises(PruningError, match=rf"ns.fold: {option}= takes True or False; got 'no' \(str\)"):
        ns.fold(model, torch.randn(1, 3, 8, 8), **{option: "no"})
