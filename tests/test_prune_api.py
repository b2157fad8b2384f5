"""The public pruning API: ns.prune / ns.plan_pruning / ns.apply_plan and their errors."""

from __future__ import annotations

import copy
import re
from typing import ClassVar

import pytest
import torch

import netsculpt as ns
from netsculpt.errors import PruningError
from netsculpt.surgery import PrunePlan


@pytest.fixture
def resnet20() -> tuple[torch.nn.Module, torch.Tensor]:
    return ns.create_model("resnet20_cifar").eval(), torch.randn(1, 3, 32, 32)


def test_prune_returns_smaller_copy(resnet20) -> None:
    model, x = resnet20
    before = ns.measure(model, x, latency=False)
    small = ns.prune(model, x, criterion="l1", ratio=0.5)
    after = ns.measure(small, x, latency=False)
    assert sum(p.numel() for p in model.parameters()) == before.params  # original untouched
    # every prunable group halves: conv MACs scale ~ (1/2)^2 inside blocks, ~1/2 at group borders
    assert after.macs < 0.5 * before.macs
    assert after.params < 0.5 * before.params
    assert small(x).shape == (1, 10)


def test_ratio_zero_changes_nothing_and_bad_ratios_refused(resnet20) -> None:
    model, x = resnet20
    same = ns.prune(model, x, ratio=0.0)
    assert torch.equal(same(x), model(x))
    for bad in (1.0, -0.1, 1.5):
        with pytest.raises(PruningError, match=r"\[0, 1\)"):
            ns.prune(model, x, ratio=bad)


def test_l1_removes_the_smallest_filters(resnet20) -> None:
    model, x = resnet20
    with torch.no_grad():
        model.layer1[0].conv1.weight[3].mul_(1e-3)  # make filter 3 clearly the weakest
    plan, _ = ns.plan_pruning(model, x, criterion="l1", ratio=0.25, round_to=1)
    assert 3 not in plan.keep["layer1.0.conv1"]


def test_round_to_and_ignored(resnet20) -> None:
    model, x = resnet20
    plan, graph = ns.plan_pruning(model, x, ratio=0.5, round_to=8, ignored=["layer3.0.conv1"])
    for gid, kept in plan.keep.items():
        assert len(kept) % 8 == 0 or len(kept) == graph.group(gid).size
    assert "layer3.0.conv1" not in plan.keep


def test_plan_json_round_trip_and_replay(resnet20, tmp_path) -> None:
    model, x = resnet20
    plan, _ = ns.plan_pruning(model, x, ratio=0.3)
    path = plan.save(tmp_path / "plan.json")
    again = PrunePlan.load(path)
    assert again.keep == plan.keep and again.sizes == plan.sizes
    a = ns.apply_plan(model, plan, x)
    b = ns.apply_plan(model, again, x)
    assert torch.equal(a(x), b(x))


def test_bad_plans_refused(resnet20) -> None:
    model, x = resnet20
    graph = ns.trace(model, x)
    sizes = {g.id: g.size for g in graph.groups}
    with pytest.raises(PruningError, match="0 channels"):
        ns.apply_plan(model, PrunePlan({"layer1.0.conv1": []}, sizes), x, graph=graph)
    with pytest.raises(PruningError, match="does not have"):
        ns.apply_plan(model, PrunePlan({"nope": [0]}, sizes), x, graph=graph)
    with pytest.raises(PruningError, match="network output"):
        ns.apply_plan(model, PrunePlan({"fc": [0, 1]}, sizes), x, graph=graph)


def test_data_criterion_without_data_is_explained(resnet20) -> None:
    from dataclasses import dataclass

    from netsculpt.importance.base import CRITERIA

    @dataclass
    class NeedsActivations:
        needs: frozenset = frozenset({"weights", "activations"})

        def score(self, model, graph, data):
            return {}

    CRITERIA.register("_test_acts", NeedsActivations)
    try:
        with pytest.raises(PruningError, match="needs activations: pass data="):
            ns.prune(*resnet20, criterion="_test_acts")
    finally:
        CRITERIA._entries.pop("_test_acts")


def test_unknown_criterion_lists_names(resnet20) -> None:
    with pytest.raises(ns.NetsculptError, match="Did you mean: l1"):
        ns.prune(*resnet20, criterion="l11")
    assert {"l1", "l2", "random"} <= set(ns.list_criteria())


class HardCoded(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Conv2d(3, 8, 3)
        self.b = torch.nn.Conv2d(8, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.a(x)
        return self.b(y.unflatten(1, (2, 4)).flatten(1, 2))  # widths 2 x 4 written in the code


def test_pruned_model_that_no_longer_runs_is_reported() -> None:
    with pytest.raises(PruningError, match="no longer runs") as err:
        ns.prune(HardCoded(), torch.randn(1, 3, 8, 8), ratio=0.5)
    assert "breaks it: a;" in str(err.value)  # names the group to ignore


class RunsOnce(torch.nn.Module):
    """Fails from its second forward on, through state netsculpt cannot see (a class attribute)."""

    runs: ClassVar[list[int]] = []

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = torch.nn.Conv2d(3, 8, 3), torch.nn.Conv2d(8, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.runs.append(1)
        if len(self.runs) > 1:
            raise RuntimeError("this model runs once")
        return self.b(self.a(x))


def test_a_failure_the_unpruned_model_shares_blames_no_group() -> None:
    """Before, every group of the plan was named as breaking the model (as the Mix-FFN groups of a
    SegFormer the trace had left unable to run), and the advice was to ignore them."""
    RunsOnce.runs.clear()
    with pytest.raises(PruningError, match="unpruned copy of the model fails the same way") as err:
        ns.prune(RunsOnce(), torch.randn(1, 3, 8, 8), ratio=0.5)
    assert "breaks it" not in str(err.value)


@pytest.mark.parametrize("pruned_before", [False, True])
def test_failed_inplace_prune_leaves_the_model_as_it_was(pruned_before: bool) -> None:
    model = HardCoded().eval()
    x = torch.randn(1, 3, 8, 8)
    if pruned_before:  # an earlier edit recorded on the model: its record must not grow
        model.b = torch.nn.Sequential(torch.nn.Conv2d(8, 6, 1), torch.nn.ReLU(), torch.nn.Conv2d(6, 4, 1))
        ns.prune(model, x, widths={"b.0": 3}, inplace=True, round_to=1)
    spec = copy.deepcopy(vars(model).get("netsculpt_spec"))
    weights = {n: p for n, p in model.named_parameters()}
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        before = model(x)
    with pytest.raises(PruningError, match="no longer runs") as err:
        ns.prune(model, x, widths={"a": 2}, inplace=True, round_to=1)
    assert all(p is weights[n] for n, p in model.named_parameters())  # the same parameter objects
    assert model.a.out_channels == 8 and model.a.weight.shape == (8, 3, 3, 3)
    assert vars(model).get("netsculpt_spec") == spec
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    with torch.no_grad():
        assert torch.equal(model(x), before)
    assert "breaks it: a;" in str(err.value)  # restored first, so the culprit search can run on it


def test_pruned_copy_keeps_each_modules_mode() -> None:
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.BatchNorm2d(8),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 3, 1),
    ).train()
    model[1].eval()  # a frozen BatchNorm inside a model being fine-tuned
    small = ns.prune(model, torch.randn(1, 3, 8, 8), ratio=0.5, round_to=1)
    assert [m.training for m in small.modules()] == [m.training for m in model.modules()]
    assert small.training and not small[1].training


@pytest.fixture
def lenet() -> tuple[torch.nn.Module, torch.Tensor]:
    return ns.create_model("lenet5").eval(), torch.randn(1, 1, 28, 28)


@pytest.mark.parametrize(
    ("option", "value", "accepted"),
    [
        ("criterion", None, r"a registered name \(bn_scale, .*\) or an object with .needs and .score\(\)"),
        ("criterion", 3, r"a registered name .*"),
        ("widths", 3, r"a dict of group id or module name -> channels kept"),
        ("widths", [("conv1", 2)], r"a dict of group id .*"),
        ("ignored", 3, r"module names, globs .*, classes or module objects \(one, or a list\), or None"),
        ("min_channels", None, r"a whole number >= 1"),
        ("min_channels", 1.5, r"a whole number >= 1"),
        ("calib_batches", "8", r"a whole number >= 1"),
        ("threads", "x", r"a whole number >= 1"),
        ("allow_inexact", "no", r"True or False"),
        ("strategy", "bogus", r"one of uniform, global, fast"),
        ("graph", 3, r"a ChannelGraph from ns.trace.*"),
        ("inplace", "yes", r"True or False"),
    ],
)
def test_wrong_option_types_name_the_option(lenet, option, value, accepted) -> None:
    # each of these was a raw TypeError / AttributeError from deep inside (or silently ignored)
    with pytest.raises(PruningError, match=rf"{option}= takes {accepted}; got {re.escape(repr(value))}"):
        ns.prune(*lenet, **{option: value})


def test_unknown_option_lists_the_options(lenet) -> None:
    with pytest.raises(PruningError, match=r"ns.prune has no option ratoi; its options: criterion, ratio, "):
        ns.prune(*lenet, ratoi=0.5)


def test_ignored_none_ignores_nothing(lenet) -> None:
    model, x = lenet
    assert ns.trace(model, x, ignored=None).prunable_groups
    assert ns.prune(model, x, ignored=None).conv1.out_channels < model.conv1.out_channels


def test_apply_plan_takes_a_plan_or_its_dict_and_refuses_anything_else(lenet) -> None:
    model, x = lenet
    plan, _ = ns.plan_pruning(model, x, ratio=0.5)
    from_dict = ns.apply_plan(model, plan.to_dict(), x)
    assert torch.equal(from_dict(x), ns.apply_plan(model, plan, x)(x))
    with pytest.raises(PruningError, match=r"expected keys 'keep' and 'sizes', got a dict with keys \[\]"):
        ns.apply_plan(model, {}, x)
    with pytest.raises(
        PruningError, match=r"ns.apply_plan: plan= takes a PrunePlan .*; got None \(NoneType\)"
    ):
        ns.apply_plan(model, None, x)
    with pytest.raises(PruningError, match=r"model= takes a torch.nn.Module .*; got None"):
        ns.apply_plan(None, plan, x)


@pytest.mark.parametrize("steps", [1.5, None, "2", True, 0])
def test_prune_iteratively_needs_a_whole_number_of_steps(lenet, steps) -> None:
    with pytest.raises(PruningError, match=r"ns.prune_iteratively: steps= takes a whole number >= 1; got"):
        ns.prune_iteratively(*lenet, steps=steps, target="macs=0.5")


def test_prune_iteratively_refuses_a_finetune_that_is_not_a_function(lenet) -> None:
    with pytest.raises(PruningError, match=r"finetune= takes a function, or None; got 3 \(int\)"):
        ns.prune_iteratively(*lenet, steps=1, target="macs=0.5", finetune=3)
    with pytest.raises(
        PruningError, match=r"ns.prune_iteratively has no option graph; its options: criterion, "
    ):
        ns.prune_iteratively(*lenet, steps=1, target="macs=0.5", graph=None)
