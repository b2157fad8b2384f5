"""LAMP: hand-computed scores, monotone within a group (same order as l2), exact global pruning."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

import netsculpt as ns
from netsculpt.importance import get_criterion
from netsculpt.importance.base import producer_weights
from netsculpt.importance.lamp import lamp_normalize
from netsculpt.surgery import apply_plan_, mask_

from .conftest import randomize_bn


def test_lamp_normalize_by_hand_with_ties_and_zeros() -> None:
    # sorted: 0, 1, 2, 2, 4 -> sums of the equal-or-larger: 9, 9, 8, 8, 4
    scores = lamp_normalize(np.array([2.0, 4.0, 1.0, 2.0, 0.0]))
    np.testing.assert_allclose(scores, [2 / 8, 1, 1 / 9, 2 / 8, 0])
    np.testing.assert_array_equal(lamp_normalize(np.zeros(3)), np.zeros(3))
    with pytest.raises(ValueError, match="non-negative"):
        lamp_normalize(np.array([1.0, -1.0]))


def test_lamp_scores_a_conv_by_hand() -> None:
    model = nn.Sequential(nn.Conv2d(1, 3, 2, bias=False), nn.ReLU(), nn.Conv2d(3, 2, 1)).eval()
    with torch.no_grad():  # filter norms^2: 4 * 1, 4 * 0.25, 4 * 4 = 4, 1, 16
        model[0].weight.copy_(torch.tensor([1.0, 0.5, 2.0]).view(3, 1, 1, 1).expand(3, 1, 2, 2))
    graph = ns.trace(model, torch.randn(1, 1, 6, 6))
    np.testing.assert_allclose(get_criterion("lamp").score(model, graph)["0"], [4 / 20, 1 / 21, 1.0])


def test_lamp_ranks_each_group_as_l2_does(resnet20) -> None:
    """Monotone within a group: the order of l2 where one filter produces the channel (a residual stage
    sums several producers raw, l2 divides each by its mean first, so only single-producer groups)."""
    model, x, _ = resnet20
    graph = ns.trace(model, x)
    lamp, l2 = (get_criterion(n).score(model, graph) for n in ("lamp", "l2"))
    tensors = dict(model.named_parameters())
    single = [g for g in graph.prunable_groups if len(producer_weights(g, tensors)) == 1]
    assert len(single) >= 9
    for g in single:
        order = [np.argsort(-s[g.id], kind="stable") for s in (lamp, l2)]
        np.testing.assert_array_equal(*order)
    assert all(lamp[g.id].max() == pytest.approx(1.0) for g in graph.prunable_groups)


def test_global_lamp_pruning_is_exact() -> None:
    torch.manual_seed(0)
    model = randomize_bn(ns.create_model("resnet20_cifar"))
    x = torch.randn(2, 3, 32, 32)
    plan, graph = ns.plan_pruning(model, x[:1], criterion="lamp", target="macs=0.5", strategy="global")
    assert plan.keep and len({len(k) / graph.group(g).size for g, k in plan.keep.items()}) > 1  # not uniform
    masked = mask_(copy.deepcopy(model), graph, plan)
    small = apply_plan_(model, graph, plan)
    with torch.no_grad():
        torch.testing.assert_close(small(x), masked(x), rtol=1e-4, atol=1e-5)
