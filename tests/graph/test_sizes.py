"""Channel counts the model's code reads from ``.shape`` and reuses as sizes (graph/sizes.py)."""

from __future__ import annotations

import torch
from torch import nn

from netsculpt.graph import trace
from netsculpt.graph.sizes import ChannelCount, DerivedCount
from netsculpt.surgery.verify import pruning_error, random_plan
from tests.graph.archs import cbr, randomize_


class CountFromInput(nn.Module):
    """Like timm's LambdaLayer: the output is reshaped with the channel count of the *input*."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = cbr(3, 8), nn.Conv2d(8, 8, 1), nn.Conv2d(8, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.a(x)
        n, c, h, w = x.shape
        y = self.b(x).flatten(2).transpose(1, 2)  # (n, hw, 8): b's channels, not a's
        return self.c(y.transpose(1, 2).reshape(n, c, h, w))


class OwnCount(nn.Module):
    """The common, harmless case: a tensor reshaped with its own channel count."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = cbr(3, 8), nn.Conv2d(8, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.a(x)
        n, c, h, w = x.shape
        return self.b(x.reshape(n, c, h * w).flip(-1).reshape(n, c, h, w))


class FreshTensor(nn.Module):
    """A new tensor sized by a channel count stays that size after pruning: the count is pinned."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = cbr(3, 8), nn.Conv2d(8, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.a(x)
        pad = torch.ones(x.size(0), x.size(1), 1, 1)
        return self.b(x) + pad.sum()


def test_count_copied_from_another_group_pairs_both() -> None:
    """Until 2026-12-07 both groups were pinned ("sizes a tensor with the channel count of ..."); now
    position k of one goes with position k of the other, so the counts stay equal (SegFormer's and
    PVT's sequence reduction reshapes the reduction conv's output with the trunk's count)."""
    model, x = randomize_(CountFromInput()), torch.randn(1, 3, 8, 8)
    graph = trace(model, x)
    group = graph.group("a.0")
    assert group.n_prunable == 8 and {"a.0.weight", "b.weight", "c.weight"} <= {m.name for m in group.members}
    assert "b" not in {g.id for g in graph.groups}
    assert pruning_error(model, graph, random_plan(graph, 0.5, seed=0), x) < 1e-5


class CountOverPadding(nn.Module):
    """The count copied onto a dim that also holds elements of no channel (zeros concatenated): they
    cannot be removed, so the counts could not stay equal. Both stay pinned."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = cbr(3, 8), nn.Conv2d(8, 4, 1), nn.Conv2d(8, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.a(x)
        n, c, h, w = x.shape
        y = torch.cat([self.b(x), torch.zeros(n, 4, h, w)], 1)
        return self.c(y.reshape(n, c, h, w))


def test_count_copied_over_non_channel_elements_pins_both() -> None:
    model, x = randomize_(CountOverPadding()), torch.randn(1, 3, 8, 8)
    graph = trace(model, x)
    for gid in ("a.0", "b"):
        group = graph.group(gid)
        assert group.n_prunable == 0 and any("channel count" in r for r in group.reasons), group.reasons
    assert pruning_error(model, graph, random_plan(graph, 0.5, seed=0), x) < 1e-5  # nothing breaks


def test_own_count_stays_prunable() -> None:
    model, x = randomize_(OwnCount()), torch.randn(1, 3, 8, 8)
    graph = trace(model, x)
    assert graph.group("a.0").n_prunable == 8
    assert pruning_error(model, graph, random_plan(graph, 0.5, seed=0), x) < 1e-5


def test_count_used_for_a_new_tensor_is_pinned() -> None:
    graph = trace(FreshTensor(), torch.randn(1, 3, 8, 8))
    assert graph.group("a.0").n_prunable == 0


def test_counts_only_for_channel_dims_and_derived_after_arithmetic() -> None:
    seen = {}

    class Probe(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Conv2d(3, 8, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.a(x)
            seen["shape"], seen["size1"], seen["half"] = y.shape, y.size(1), y.shape[1] // 2
            return y

    trace(Probe(), torch.randn(1, 3, 4, 4))
    assert [type(n) is ChannelCount for n in seen["shape"]] == [False, True, False, False]
    assert isinstance(seen["size1"], ChannelCount) and seen["size1"] == 8
    assert isinstance(seen["half"], DerivedCount) and seen["half"] == 4


class TokenHeads(nn.Module):
    """ViT-style head split: ``heads`` and the head width either written as constants or derived from
    the embedding's channel count (CaiT's ``C // num_heads``)."""

    def __init__(self, derived: bool) -> None:
        super().__init__()
        self.embed, self.q, self.out, self.derived = (
            nn.Linear(3, 8),
            nn.Linear(8, 8),
            nn.Linear(8, 2),
            derived,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x)
        b, n, c = x.shape
        q = self.q(x).reshape(b, n, 2, c // 2 if self.derived else 4).relu()
        return self.out(q.flatten(2))


def test_constant_head_width_and_width_from_another_group_are_pinned() -> None:
    x = torch.randn(1, 5, 3)
    constant = trace(TokenHeads(derived=False), x, allow_inexact=True).group("q")
    assert constant.n_prunable == 0 and any("as a constant (4)" in r for r in constant.reasons)
    derived = trace(TokenHeads(derived=True), x, allow_inexact=True)
    for gid in ("q", "embed"):
        assert derived.group(gid).n_prunable == 0, derived.group(gid).reasons


class RadixSum(nn.Module):
    """ResNeSt's split attention: (B, radix * C, H, W) viewed as (B, radix, C, H, W) and summed over radix."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = cbr(3, 8), nn.Conv2d(4, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.a(x)
        b, rc, h, w = x.shape
        return self.b(x.reshape(b, 2, rc // 2, h, w).sum(dim=1))


def test_sum_over_a_split_factor_keeps_channels_paired() -> None:
    model, x = randomize_(RadixSum()), torch.randn(1, 3, 8, 8)
    graph = trace(model, x)
    group = graph.group("a.0")
    assert group.size == 4 and group.n_prunable == 4  # channel j owns positions j and j + 4
    assert ("b.weight", 1) in {(m.name, m.dim) for m in group.members}
    assert pruning_error(model, graph, random_plan(graph, 0.5, seed=0), x) < 1e-5
