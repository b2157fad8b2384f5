"""The search space: count-based costs equal the cost model's, and widths fitted to a budget meet it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import netsculpt as ns
from netsculpt.errors import PruningError
from netsculpt.importance import get_criterion
from netsculpt.search import SearchSpace
from netsculpt.surgery import PrunePlan


def _space(model, x) -> SearchSpace:
    graph = ns.trace(model, x)
    return SearchSpace(model, x, graph, get_criterion("l1").score(model, graph, None))


@pytest.fixture(scope="module")
def resnet_space() -> SearchSpace:
    """ResNet-20: residual stages couple several convs into one group, the case prefix sums must get right."""
    model = ns.create_model("resnet20_cifar", num_classes=10, in_channels=3).eval()
    space = _space(model, torch.randn(1, 3, 32, 32))
    space.model_and_input = (model, torch.randn(1, 3, 32, 32))  # for tests that need another space
    return space


def test_count_costs_equal_the_cost_model(resnet_space: SearchSpace) -> None:
    """The fast path must be the cost model's arithmetic, not an approximation of it."""
    rng = np.random.default_rng(0)
    for _ in range(20):
        counts = resnet_space.from_ratios(rng.uniform(0.1, 1.0, len(resnet_space)))
        keep = resnet_space.keep(counts)
        for metric in ("macs", "params"):
            assert resnet_space.cost(counts, metric) == pytest.approx(
                resnet_space.cost_model.fraction(keep, metric), rel=1e-12
            )


def test_widths_keep_the_best_scored_channels(resnet_space: SearchSpace) -> None:
    counts = resnet_space.full()
    counts[0] = 4
    plan = resnet_space.plan(counts)
    gid = resnet_space.ids[0]
    assert plan.keep[gid] == sorted(np.argsort(resnet_space.scores[gid])[-4:].tolist())
    assert list(plan.keep) == [gid]  # untouched groups are not in the plan
    assert isinstance(plan, PrunePlan)


@pytest.mark.parametrize("value", [0.7, 0.5, 0.25])
def test_fit_lands_within_tolerance_under_the_budget(resnet_space: SearchSpace, value: float) -> None:
    """2% is the targets' tolerance elsewhere in netsculpt (allocate.target_plan)."""
    rng = np.random.default_rng(1)
    for shape in (np.ones(len(resnet_space)), rng.uniform(0.2, 1.0, len(resnet_space))):
        counts = resnet_space.fit(shape, "macs", value, tolerance=0.02)
        cost = resnet_space.cost(counts, "macs")
        assert value * 0.98 <= cost <= value


def test_clip_respects_floors_and_round_to(resnet_space: SearchSpace) -> None:
    model, x = resnet_space.model_and_input
    space = SearchSpace(model, x, resnet_space.graph, resnet_space.scores, min_ratio=0.25, round_to=4)
    counts = space.clip(np.full(len(space), 1.0))
    assert np.all(counts >= np.ceil(space.sizes * 0.25))
    assert np.all(counts % 4 == 0)
    assert np.all(space.clip(space.sizes + 7) == space.sizes)


def test_hw_widths_sit_on_each_groups_grid_and_fit_the_budget(resnet_space: SearchSpace) -> None:
    from netsculpt.allocate.widths import hw_step

    model, x = resnet_space.model_and_input
    space = SearchSpace(model, x, resnet_space.graph, resnet_space.scores, round_to="hw")
    steps = np.array([hw_step(int(n)) for n in space.sizes])
    counts = space.fit(np.ones(len(space)), "macs", 0.5)
    assert np.all((counts % steps == 0) | (counts == space.sizes))
    assert space.cost(counts, "macs") <= 0.5
    assert np.all(space.clip(np.full(len(space), 3.0)) % steps == 0)


def test_unreachable_budget_says_what_is_reachable(resnet_space: SearchSpace) -> None:
    with pytest.raises(PruningError, match="unreachable"):
        resnet_space.fit(np.ones(len(resnet_space)), "macs", 0.001)
