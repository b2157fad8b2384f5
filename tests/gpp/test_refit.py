"""Least-squares refit: exact on its calibration data when it can be, optimal otherwise."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import netsculpt as ns
from netsculpt.errors import ConfigError
from netsculpt.gpp import changed_consumers, kept_outputs, refit_consumers_


class TwoConv(nn.Module):
    def __init__(self, **padding: object) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 4, 3, **(padding or {"padding": 1}))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x))  # no nonlinearity: removed channels can be linear in kept ones


def _batches(n: int = 4) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(6, 3, 8, 8, generator=g), torch.zeros(6, dtype=torch.long)) for _ in range(n)]


@pytest.mark.parametrize(
    "padding",
    [{"padding": 1}, {"padding": "same"}],
    ids=["numbers", "same"],
)
def test_refit_is_exact_when_removed_channels_are_combinations_of_kept_ones(padding: dict) -> None:
    torch.manual_seed(0)
    model = TwoConv(**padding).double()
    with torch.no_grad():  # filters 4..7 = combinations of 0..3: their maps are linear in the kept maps
        mix = torch.randn(4, 4, dtype=torch.float64)
        model.conv1.weight[4:] = torch.einsum("ij,jchw->ichw", mix, model.conv1.weight[:4])
        model.conv1.bias[4:] = mix @ model.conv1.bias[:4]
    x = torch.randn(1, 3, 8, 8, dtype=torch.float64)
    small = ns.prune(model, x, widths={"conv1": 4}, criterion="l1")
    with torch.no_grad():
        small.conv1.weight.copy_(model.conv1.weight[:4])  # keep exactly channels 0..3
        small.conv1.bias.copy_(model.conv1.bias[:4])
    data = [(b.double(), y) for b, y in _batches()]
    assert changed_consumers(model, small) == ["conv2"]
    with torch.no_grad():
        before = max(float((small(b) - model(b)).abs().max()) for b, _ in data)
    residual = refit_consumers_(model, small, data)
    with torch.no_grad():
        after = max(float((small(b) - model(b)).abs().max()) for b, _ in data)
    assert before > 1e-2 and after <= 1e-4 and residual["conv2"] <= 1e-6


def test_refit_satisfies_the_normal_equations() -> None:
    """Any refit is the least-squares optimum: no small change to conv2's weights lowers the error."""
    torch.manual_seed(0)
    model = TwoConv().double()
    x = torch.randn(1, 3, 8, 8, dtype=torch.float64)
    small = ns.prune(model, x, widths={"conv1": 3}, criterion="l1")
    data = [(b.double(), y) for b, y in _batches()]
    refit_consumers_(model, small, data)
    weight = small.conv2.weight.detach().clone().requires_grad_(True)
    bias = small.conv2.bias.detach().clone().requires_grad_(True)
    loss = sum(
        (nn.functional.conv2d(small.conv1(b), weight, bias, padding=1) - model(b)).pow(2).sum()
        for b, _ in data
    )
    loss.backward()
    assert float(weight.grad.abs().max()) <= 1e-6 * float(loss) and float(
        bias.grad.abs().max()
    ) <= 1e-6 * float(loss)


def test_layers_whose_outputs_were_pruned_need_kept_out() -> None:
    torch.manual_seed(0)
    model = ns.create_model("lenet5").double().eval()
    x = torch.randn(1, 1, 28, 28, dtype=torch.float64)
    plan, graph = ns.plan_pruning(model, x, widths={"conv1": 5, "conv2": 10})
    small = ns.apply_plan(model, plan, x)
    data = [(torch.randn(8, 1, 28, 28, dtype=torch.float64), None) for _ in range(2)]
    with pytest.raises(ConfigError, match="kept_out"):
        refit_consumers_(model, small, data)
    residual = refit_consumers_(model, small, data, kept_out=kept_outputs(graph, plan))
    assert set(residual) == {"conv2", "fc1"} and all(0 <= r < 1 for r in residual.values())


def test_depthwise_convs_are_not_refitted() -> None:
    """A depthwise conv loses inputs and outputs together: each kept filter sees what it saw before."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.ReLU(),
        nn.Conv2d(16, 8, 1),
    ).eval()  # fmt: skip
    x = torch.randn(2, 3, 8, 8)
    plan, graph = ns.plan_pruning(model, x, criterion="l1", ratio=0.5)
    small = ns.apply_plan(model, plan, x, graph=graph)
    assert changed_consumers(model, small) == ["4"]
    residual = refit_consumers_(model, small, _batches(2), kept_out=kept_outputs(graph, plan))
    assert set(residual) == {"4"}
