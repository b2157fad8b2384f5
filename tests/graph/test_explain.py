"""A high MACs ratio comes with the engine's reason, and that reason is real: pruning there is inexact."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from netsculpt.errors import TraceError
from netsculpt.graph import trace
from netsculpt.graph.explain import pinned_macs
from netsculpt.measure import count_macs
from netsculpt.surgery import PrunePlan, apply_plan_
from netsculpt.surgery.verify import pruning_error, random_plan
from tests.graph.archs import randomize_


class NormedMlp(nn.Module):
    """A wide Linear under LayerNorm (a transformer's residual width) and a small exact hidden layer."""

    def __init__(self) -> None:
        super().__init__()
        self.embed, self.norm = nn.Linear(8, 64), nn.LayerNorm(64)
        self.up, self.down = nn.Linear(64, 4), nn.Linear(4, 64)
        self.head = nn.Linear(64, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        h = h + self.down(torch.relu(self.up(self.norm(h))))
        return self.head(h)


def test_costly_pinned_layers_are_named_with_the_reason() -> None:
    model, x = randomize_(NormedMlp()), torch.randn(2, 8)
    graph = trace(model, x)
    pruned = apply_plan_(copy.deepcopy(model), graph, random_plan(graph, 0.5, seed=0))
    macs, layers = count_macs(pruned, x)
    assert macs > 0.7 * count_macs(model, x)[0]  # only the 4-wide hidden layer could shrink
    why = pinned_macs(graph, layers)
    assert why and why[0].layer in {"embed", "down", "head", "up"}
    assert all("normalises over these channels" in w.reason for w in why), why
    assert 0 < why[0].share <= 1 and "% of MACs" in str(why[0])


def test_the_pinned_channels_really_are_inexact() -> None:
    """Pruning them anyway (allow_inexact) changes the function: the pin is needed, not timid."""
    model, x = randomize_(NormedMlp()), torch.randn(2, 8)
    graph = trace(model, x, allow_inexact=True)
    full = random_plan(graph, 0.5, seed=0)
    plan = PrunePlan(keep={"embed": full.keep["embed"]}, sizes=full.sizes)  # only the LayerNorm width
    assert pruning_error(model, graph, plan, x) > 1e-2


class ChannelMix(nn.Module):
    """A conv whose channels pass one channel-mixing op (the soft pins the timm sweep reports)."""

    def __init__(self, mix: str) -> None:
        super().__init__()
        self.mix, self.a, self.norm, self.b = mix, nn.Conv2d(3, 8, 1), nn.GroupNorm(1, 8), nn.Conv2d(8, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.a(x)
        if self.mix == "softmax":  # SKNet's branch attention, attention over channels
            h = h * torch.softmax(h, dim=1)
        elif self.mix == "mean":  # a statistic over channels
            h = h - h.mean(dim=1, keepdim=True)
        else:  # GroupNorm(1, C): LayerNorm over channels (PoolFormer, ConvNeXt-style blocks)
            h = self.norm(h)
        return self.b(h)


@pytest.mark.parametrize("mix", ["softmax", "mean", "groupnorm1"])
def test_soft_pins_are_inexact_when_forced(mix: str) -> None:
    model, x = randomize_(ChannelMix(mix)), torch.randn(2, 3, 4, 4)
    assert trace(model, x).group("a").n_prunable == 0
    graph = trace(model, x, allow_inexact=True)
    plan = random_plan(graph, 0.5, seed=0)
    assert "a" in plan.keep and pruning_error(model, graph, plan, x) > 1e-3


def test_a_forward_that_writes_its_own_weights_is_refused() -> None:
    class Drift(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.conv.weight.add_(1.0)  # (under no_grad while tracing)
            return self.conv(x)

    with pytest.raises(TraceError, match="wrote into its own parameter"):
        trace(Drift(), torch.randn(1, 3, 4, 4))
