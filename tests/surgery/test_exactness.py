"""A pruned model must compute exactly what the masked original computes (relative error <= 1e-4)."""

from __future__ import annotations

import copy

import pytest
import torch

from netsculpt.graph import trace
from netsculpt.measure import count_macs
from netsculpt.surgery import apply_plan_
from netsculpt.surgery.verify import pruning_error, random_plan
from tests.graph.archs import ARCHS, randomize_

# relative L2 error bound from the issue: float32 rounding through a few layers is ~1e-7
TOLERANCE = 1e-4


@pytest.mark.parametrize("name", sorted(ARCHS))
@pytest.mark.parametrize("seed", [0, 1])
def test_pruned_equals_masked(name: str, seed: int) -> None:
    cls, shape = ARCHS[name]
    model = randomize_(cls())
    x = torch.randn(shape)
    graph = trace(model, x)
    plan = random_plan(graph, 0.5, seed)
    assert plan.keep, f"{name}: expected something prunable\n{graph}"
    assert pruning_error(model, graph, plan, torch.randn(shape)) <= TOLERANCE


@pytest.mark.parametrize("name", sorted(ARCHS))
def test_pruning_shrinks_macs_and_keeps_output_shape(name: str) -> None:
    cls, shape = ARCHS[name]
    model = randomize_(cls())
    x = torch.randn(shape)
    graph = trace(model, x, allow_inexact=True)
    pruned = apply_plan_(copy.deepcopy(model), graph, random_plan(graph, 0.5))
    with torch.no_grad():
        assert pruned(x).shape == model(x).shape
    assert count_macs(pruned, x)[0] < count_macs(model, x)[0]


def test_module_attributes_stay_true() -> None:
    from tests.graph.archs import GroupedSE, TransposeUp

    for cls in (GroupedSE, TransposeUp):
        model = randomize_(cls())
        x = torch.randn(2, 3, 8, 8)
        graph = trace(model, x, allow_inexact=True)
        pruned = apply_plan_(copy.deepcopy(model), graph, random_plan(graph, 0.5))
        for m in pruned.modules():
            if isinstance(m, torch.nn.Conv2d):
                assert m.weight.shape[0] == m.out_channels
                assert m.weight.shape[1] * m.groups == m.in_channels
            if isinstance(m, torch.nn.ConvTranspose2d):
                assert m.weight.shape[0] == m.in_channels
            if isinstance(m, torch.nn.modules.batchnorm._NormBase):
                assert m.num_features == m.weight.shape[0]
            if isinstance(m, torch.nn.GroupNorm):
                assert m.num_channels == m.weight.shape[0]
            if isinstance(m, torch.nn.PReLU):
                assert m.num_parameters == m.weight.numel()
        # the depthwise conv's group count follows its channels; the grouped conv keeps 4 groups
        if cls is GroupedSE:
            assert pruned.grouped.groups == 4
            assert pruned.dw.groups == pruned.dw.in_channels < 12


class OwnRmsNorm(torch.nn.Module):
    """A norm layer written outside torch (like timm's RmsNorm): it stores ``normalized_shape``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.normalized_shape, self.weight = (dim,), torch.nn.Parameter(torch.rand(dim) + 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.rms_norm(x, self.normalized_shape, self.weight, 1e-6)


def test_stored_normalized_shape_follows_the_weight() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(3, 8), OwnRmsNorm(8), torch.nn.Linear(8, 2))
    x = torch.randn(4, 3)
    graph = trace(model, x, allow_inexact=True)
    pruned = apply_plan_(copy.deepcopy(model), graph, random_plan(graph, 0.5))
    assert pruned[1].normalized_shape == tuple(pruned[1].weight.shape) == (4,)
    assert pruned(x).shape == (4, 2)


@pytest.mark.parametrize("criterion", ["taylor", "hrank"])
def test_criteria_that_read_activations_score_a_grouped_transposed_conv(criterion: str) -> None:
    """Its outputs repeated one atom per group, so every activation site was refused."""
    import netsculpt as ns
    from tests.graph.archs import GroupedTransposeUp

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        randomize_(GroupedTransposeUp()), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()
    )
    x = torch.randn(2, 3, 8, 8)
    data = [(torch.randn(4, 3, 8, 8), torch.randint(0, 2, (4,)))]
    small = ns.prune(model, x, criterion=criterion, ratio=0.5, data=data, round_to=1)
    assert small[0].up.out_channels < model[0].up.out_channels and small(x).shape == model(x).shape
