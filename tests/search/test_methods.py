"""Each search method on the tiny CNN: the property that defines it, and what it writes."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from torch import nn

import netsculpt as ns
from netsculpt.errors import PruningError
from netsculpt.importance import get_criterion
from netsculpt.search import (
    GeneticConfig,
    GreedyConfig,
    NSGA2Config,
    SearchSpace,
    SensitivityConfig,
    search_widths,
)
from netsculpt.train import evaluate

TOLERANCE = 0.02  # the search's default: land within 2% under a target


def assert_saturated(tiny, plan) -> None:
    """At or under the target, and no group could keep one more channel without passing it: the exact
    promise of the final top-up (on a model this small one channel can be worth more than 2% of MACs)."""
    graph = ns.trace(tiny.model, tiny.example)
    space = SearchSpace(tiny.model, tiny.example, graph, get_criterion("l1").score(tiny.model, graph, None))
    counts = np.array([plan.meta["widths"][gid] for gid in space.ids])
    goal = plan.meta["target"]["macs"]
    assert space.cost(counts, "macs") <= goal
    for i in range(len(space)):
        if counts[i] < space.sizes[i]:
            more = counts.copy()
            more[i] += 1
            assert space.cost(more, "macs") > goal, f"{space.ids[i]} could keep another channel"


def test_sensitivity_curves_and_allocation_meets_target(tiny, tmp_path: Path) -> None:
    config = SensitivityConfig(ratios=(0.25, 0.5, 0.75))
    result = search_widths(
        tiny.model, tiny.example, "sensitivity", ["macs=0.6", "macs=0.4"], tiny.train, tiny.val, config,
        out_dir=tmp_path,
    )  # fmt: skip
    curves = result.history["curves"]
    assert set(curves) == {"conv1", "conv2", "conv3"}
    assert all(len(c) == 3 for c in curves.values())
    for label, plan in result.plans.items():
        goal = plan.meta["target"]["macs"]
        assert goal * (1 - TOLERANCE) <= plan.meta["predicted"]["macs"] <= goal, label
    assert (tmp_path / "sensitivity.png").stat().st_size > 0
    assert (tmp_path / "plans" / "macs_0.4.json").is_file()
    # the plan is real: applying it gives a model with the predicted MACs
    small = ns.apply_plan(tiny.model, result.plans["macs=0.4"], tiny.example)
    macs = (
        ns.measure(small, tiny.example, latency=False).macs
        / ns.measure(tiny.model, tiny.example, latency=False).macs
    )
    assert macs == pytest.approx(result.plans["macs=0.4"].meta["predicted"]["macs"], rel=1e-9)


@pytest.mark.parametrize("given", [["macs=0.4", "macs=0.6"], ["macs=0.6", "macs=0.4"]])
def test_plan_and_plan_json_are_the_first_target_given(tiny, tmp_path: Path, given: list[str]) -> None:
    """Targets are searched largest first, but ``result.plan`` / ``plan.json`` (what the CLI saves as
    ``model/``) is the first one the user gave: ``--target-macs 0.3 0.6`` used to save the 0.6 model."""
    config = SensitivityConfig(ratios=(0.25, 0.5, 0.75))
    args = (tiny.model, tiny.example, "sensitivity", given, tiny.train, tiny.val, config)
    result = search_widths(*args, out_dir=tmp_path)
    assert result.plan is result.plans[given[0]]
    assert result.plan.meta["target"]["macs"] == float(given[0].split("=")[1])
    assert json.loads((tmp_path / "plan.json").read_text())["meta"]["target"] == result.plan.meta["target"]


def test_greedy_trajectory_is_monotone_and_serves_each_target(tiny, tmp_path: Path) -> None:
    result = search_widths(
        tiny.model, tiny.example, "greedy", ["macs=0.7", "macs=0.35"], tiny.train, tiny.val,
        GreedyConfig(step=0.2), out_dir=tmp_path,
    )  # fmt: skip
    trajectory = result.history["trajectory"]
    costs = [p["cost"]["macs"] for p in trajectory]
    assert costs[0] == pytest.approx(1.0)
    assert all(b < a for a, b in itertools.pairwise(costs))  # strictly cheaper every step
    assert costs[-1] <= 0.35
    for plan in result.plans.values():
        assert_saturated(tiny, plan)
    saved = json.loads((tmp_path / "trajectory.json").read_text())
    assert [p["cost"]["macs"] for p in saved] == costs


def test_greedy_steps_at_least_one_width_step_of_the_grid(tiny) -> None:
    """round_to=8 on 8- and 16-channel groups: a 0.1 chunk (1-2 channels) was rounded back up to the
    full width, so greedy never moved and stopped at macs=1.000."""
    result = search_widths(
        tiny.model, tiny.example, "greedy", "macs=0.5", tiny.train, tiny.val,
        GreedyConfig(step=0.1, round_to=8),
    )  # fmt: skip
    plan = result.plans["macs=0.5"]
    assert plan.meta["predicted"]["macs"] <= 0.5
    assert all(w % 8 == 0 for w in plan.meta["widths"].values())


def test_genetic_respects_the_budget_and_beats_uniform(tiny, tmp_path: Path) -> None:
    config = GeneticConfig(pop_size=8, generations=3, elite=2, eval_batches=1, full_batches=4)
    result = search_widths(
        tiny.model, tiny.example, "genetic", "macs=0.5", tiny.train, tiny.val, config, out_dir=tmp_path
    )
    for gen in result.history["generations"]:
        assert all(row["cost"] <= 0.5 for row in gen["population"])  # the constraint holds for everyone
        assert all(row["full"] is not None for row in gen["population"][:2])  # the elite carry full scores
    assert_saturated(tiny, result.plan)
    # the uniform allocation is in the first population, so the winner is at least as good on full scores
    assert result.plan.meta["estimate"]["loss"] <= result.history["uniform"]["loss"]
    assert (tmp_path / "generations.png").is_file()


def test_nsga2_front_is_non_dominated(tiny, tmp_path: Path) -> None:
    config = NSGA2Config(pop_size=8, generations=3, eval_batches=1, full_batches=4)
    result = search_widths(
        tiny.model,
        tiny.example,
        "nsga2",
        ["macs=0.6", "macs=0.3"],
        tiny.train,
        tiny.val,
        config,
        out_dir=tmp_path,
    )
    front = result.history["front"]
    assert len(front) >= 2
    points = [(p["value"], p["cost"]["macs"]) for p in front]
    for i, a in enumerate(points):
        for j, b in enumerate(points):
            dominated = b[0] <= a[0] and b[1] <= a[1] and b != a
            assert not dominated, f"front member {i} is dominated by {j}"
    assert json.loads((tmp_path / "front.json").read_text()) == front
    assert (tmp_path / "front.png").is_file()
    for plan in result.plans.values():
        assert_saturated(tiny, plan)


def test_accuracy_metric_and_adaptive_bn(tiny) -> None:
    """Scoring by error rate with re-estimated BatchNorm statistics still yields a valid, evaluated plan."""
    config = GreedyConfig(step=0.25, metric="accuracy", adapt_bn_batches=2)
    result = search_widths(tiny.model, tiny.example, "greedy", "macs=0.5", tiny.train, tiny.val, config)
    small = ns.apply_plan(tiny.model, result.plan, tiny.example)
    assert 0.0 <= evaluate(small, tiny.val)[0] <= 1.0
    assert result.evaluated["cheap"] > 0
    assert np.isfinite(result.plan.meta["estimate"]["loss"])


def test_ignored_takes_globs_classes_and_modules_as_ns_prune_does(tiny) -> None:
    """``search_widths(ignored=)`` took names and modules only: a glob or class was "not in the model"."""
    config = GreedyConfig(step=0.25, adapt_bn_batches=0)
    for ignored in (["conv2*"], [tiny.model.conv2], "conv[2]"):
        result = search_widths(
            tiny.model, tiny.example, "greedy", "macs=0.8", tiny.train, tiny.val, config, ignored=ignored
        )
        assert set(result.plan.keep) == {"conv3"}, ignored  # conv2 keeps its inputs too: conv1's group
    with pytest.raises(PruningError, match="nothing to search: every channel group is pinned"):
        search_widths(
            tiny.model, tiny.example, "greedy", "macs=0.8", tiny.train, tiny.val, config, ignored=nn.Conv2d
        )
