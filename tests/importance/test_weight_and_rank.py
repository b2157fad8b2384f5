"""bn_scale, FPGM and HRank against hand computations on tiny layers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import netsculpt as ns
from netsculpt.errors import NetsculptWarning
from netsculpt.importance import get_criterion


def _conv_bn(gamma: list[float]) -> nn.Module:
    model = nn.Sequential(
        nn.Conv2d(3, len(gamma), 3), nn.BatchNorm2d(len(gamma)), nn.ReLU(), nn.Conv2d(len(gamma), 2, 1)
    )
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor(gamma))
    return model.eval()


def test_bn_scale_follows_abs_gamma() -> None:
    gamma = [0.5, -2.0, 1.0, 0.1]
    model = _conv_bn(gamma)
    graph = ns.trace(model, torch.randn(1, 3, 8, 8))
    np.testing.assert_allclose(get_criterion("bn_scale").score(model, graph)["0"], np.abs(gamma))


def test_bn_scale_averages_a_stage_and_falls_back_to_l1_without_bn() -> None:
    model = ns.create_model("resnet20_cifar").eval()
    graph = ns.trace(model, torch.randn(1, 3, 32, 32))
    with torch.no_grad():
        for i, name in enumerate(["bn1", "layer1.0.bn2", "layer1.1.bn2", "layer1.2.bn2"]):
            model.get_submodule(name).weight.fill_(float(i + 1))
        model.bn1.weight[5] = -9.0  # |gamma| is used: (9 + 2 + 3 + 4) / 4
    scores = get_criterion("bn_scale").score(model, graph)["conv1"]
    assert scores[5] == 4.5 and np.all(np.delete(scores, 5) == 2.5)
    lenet = ns.create_model("lenet5").eval()
    g = ns.trace(lenet, torch.randn(1, 1, 28, 28))
    bn, l1 = (get_criterion(n).score(lenet, g) for n in ("bn_scale", "l1"))
    np.testing.assert_array_equal(bn["conv2"], l1["conv2"])


def _geometric_median(points: torch.Tensor, iters: int = 500) -> torch.Tensor:
    """Weiszfeld's algorithm."""
    y = points.mean(0)
    for _ in range(iters):
        w = 1 / (points - y).norm(dim=1).clamp_min(1e-12)
        y = (w[:, None] * points).sum(0) / w.sum()
    return y


def test_fpgm_most_redundant_filter_is_the_one_at_the_geometric_median() -> None:
    gen = torch.Generator().manual_seed(0)
    others = (
        torch.randn(7, 3 * 3 * 3, generator=gen, dtype=torch.float64) * torch.linspace(0.5, 2, 7)[:, None]
    )
    filters = torch.cat([others[:4], _geometric_median(others)[None], others[4:]])  # the median is filter 4
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 2, 1)).eval()
    with torch.no_grad():
        model[0].weight.copy_(filters.view(8, 3, 3, 3))
    graph = ns.trace(model, torch.randn(1, 3, 8, 8))
    assert int(np.argmin(get_criterion("fpgm").score(model, graph)["0"])) == 4


def test_hrank_of_a_rank_one_map_is_one() -> None:
    model = nn.Sequential(nn.Conv2d(1, 3, 1), nn.ReLU(), nn.Conv2d(3, 2, 1)).eval()
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([1.0, 2.0, 0.0]).view(3, 1, 1, 1))
        model[0].bias.zero_()
    gen = torch.Generator().manual_seed(0)
    u, v = torch.rand(6, 7, 1, generator=gen), torch.rand(6, 1, 5, generator=gen)
    rank_one = (u + 0.1) @ (v + 0.1)  # positive outer products: rank 1, and ReLU keeps them
    data = [(rank_one[:, None], torch.zeros(6, dtype=torch.long))]
    graph = ns.trace(model, data[0][0][:1])
    np.testing.assert_array_equal(get_criterion("hrank").score(model, graph, data)["0"], [1.0, 1.0, 0.0])
    full = [(torch.rand(6, 1, 7, 5, generator=gen), torch.zeros(6, dtype=torch.long))]
    np.testing.assert_array_equal(get_criterion("hrank").score(model, graph, full)["0"], [5.0, 5.0, 0.0])


def test_hrank_on_1d_maps_says_it_only_separates_dead_channels() -> None:
    """A Conv1d's map per channel is one row, rank 0 or 1: the generic 'same score' warning blamed dead
    filters; the warning now says why and names criteria that rank sequence channels."""
    model = nn.Sequential(nn.Conv1d(2, 4, 3), nn.ReLU(), nn.Conv1d(4, 2, 1)).eval()
    gen = torch.Generator().manual_seed(0)
    data = [(torch.randn(3, 2, 16, generator=gen), torch.zeros(3, dtype=torch.long))]
    graph = ns.trace(model, data[0][0][:1])
    with pytest.warns(NetsculptWarning, match=r"group '0''s maps are 1-D .*criterion='chip'"):
        scores = get_criterion("hrank").score(model, graph, data)["0"]
    assert set(scores.tolist()) <= {0.0, 1.0}
