"""ns.prune_iteratively: rounds aim at shares of the *original* model and the last lands on the target."""

from __future__ import annotations

import itertools
import sys
import warnings

import pytest
import torch

import netsculpt as ns
from netsculpt.errors import ConfigError, PruningError
from netsculpt.measure import count_macs
from netsculpt.surgery.verify import pruning_error

# what one-shot ns.prune(target=...) holds a target to (target_plan's tolerance, docs/engine.md)
TOL = 0.02


def _macs_fraction(small: torch.nn.Module, model: torch.nn.Module, x: torch.Tensor) -> float:
    return count_macs(small, x)[0] / count_macs(model, x)[0]


@pytest.mark.parametrize(
    ("name", "shape", "seed", "steps"),
    [
        # LeNet-5 seed 1: round 2 asked 0.739 of its model and landed at 0.594; the end was 0.32 of 0.4
        ("lenet5", (1, 1, 28, 28), 1, 3),
        ("lenet5", (1, 1, 28, 28), 4, 4),  # 0.213 of 0.3 before (below, at target 0.3)
        ("resnet20_cifar", (1, 3, 32, 32), 3, 4),  # 0.384 of 0.4 before
    ],
)
def test_iterative_pruning_lands_within_the_one_shot_tolerance(name, shape, seed, steps) -> None:
    torch.manual_seed(seed)
    model, x = ns.create_model(name).eval(), torch.randn(*shape)
    target = 0.3 if (name, seed) == ("lenet5", 4) else 0.4
    with warnings.catch_warnings():
        warnings.simplefilter("error", ns.errors.NetsculptWarning)  # no shortfall left to report
        small = ns.prune_iteratively(model, x, steps=steps, target=f"macs={target}")
    assert target * (1 - TOL) <= _macs_fraction(small, model, x) <= target * (1 + 1e-9)


def test_every_round_computes_what_the_masked_model_computes(monkeypatch) -> None:
    torch.manual_seed(0)
    model, x = ns.create_model("resnet20_cifar").eval(), torch.randn(1, 3, 32, 32)
    prune_module = sys.modules["netsculpt.prune"]
    rounds, apply_plan = [], prune_module.apply_plan

    def recording(current, plan, example_inputs, **kwargs):
        rounds.append((current, plan, kwargs["graph"]))
        return apply_plan(current, plan, example_inputs, **kwargs)

    monkeypatch.setattr(prune_module, "apply_plan", recording)
    small = ns.prune_iteratively(model, x, steps=3, target="macs=0.4")
    assert len(rounds) == 3
    for current, plan, graph in rounds:
        assert pruning_error(current, graph, plan, x) <= 1e-4  # the bound of tests/surgery/test_exactness
    assert _macs_fraction(small, model, x) <= 0.4


def test_the_last_rounds_warning_gives_the_fraction_of_the_original() -> None:
    """A shortfall the last round cannot avoid is reported against the user's target (it said the round's
    own: macs=0.141 of the model round 1 had left)."""
    torch.manual_seed(1)
    model, x = ns.create_model("lenet5").eval(), torch.randn(1, 1, 28, 28)
    with pytest.warns(ns.errors.NetsculptWarning, match=r"target macs=0\.020 lands at 0\.019"):
        small = ns.prune_iteratively(model, x, steps=2, target="macs=0.02")
    assert _macs_fraction(small, model, x) <= 0.02


def test_prune_iteratively_without_a_target_says_what_to_pass() -> None:
    model, x = ns.create_model("lenet5").eval(), torch.randn(1, 1, 28, 28)
    with pytest.raises(ConfigError, match=r"ns.prune_iteratively needs target=: .*target='macs=0.4'"):
        ns.prune_iteratively(model, x, steps=3)


def _outs(model: torch.nn.Module) -> dict[str, int]:
    return {n: m.out_channels for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)}


def test_per_layer_ratios_in_rounds_end_at_the_one_shot_widths() -> None:
    """Each layer shrinks a little every round (the geometric schedule a target's rounds follow) and the
    last round lands on exactly the widths one-shot ``ns.prune(ratios=...)`` gives, "hw" grid included."""
    torch.manual_seed(0)
    model, x = ns.create_model("resnet20_cifar").eval(), torch.randn(1, 3, 32, 32)
    ratios = {"layer3.*": 0.75, "layer2.*.conv1": 0.5}
    seen: list[dict[str, int]] = []
    small = ns.prune_iteratively(
        model, x, steps=3, ratios=ratios, ratio=0.5, finetune=lambda m, step: seen.append(_outs(m))
    )
    one_shot = _outs(ns.prune(model, x, ratios=ratios, ratio=0.5))
    assert _outs(small) == seen[-1] == one_shot and len(seen) == 3
    widths = [_outs(model), *seen]
    for before, after in itertools.pairwise(widths):  # never wider than the round before
        assert all(after[n] <= before[n] for n in before)
    assert _outs(model) != seen[0] != one_shot  # the first round removes some, not all, of it
    assert seen[0]["layer3.0.conv1"] == 48  # 64 * 0.25 ** (1/3) = 40.3, up to the 16-channel grid
    assert small(x).shape == (1, 10)


def test_per_layer_ratios_with_a_target_are_refused() -> None:
    """A target and a ratio per layer would be two plans: refused in rounds as in one shot."""
    model, x = ns.create_model("lenet5").eval(), torch.randn(1, 1, 28, 28)
    with pytest.raises(PruningError, match=r"ratios= sets a ratio per layer .* not with target="):
        ns.prune_iteratively(model, x, steps=2, target="macs=0.5", ratios={"conv*": 0.5})
    with pytest.raises(PruningError, match=r"takes ratio= only with ratios="):
        ns.prune_iteratively(model, x, steps=2, target="macs=0.5", ratio=0.5)


def test_an_ignored_module_object_keeps_its_width_through_every_round() -> None:
    """Each round prunes a copy, where the caller's module object is not found: round 2 stopped with
    "ignored: Conv2d is not a module of this model". Objects are read as names once, up front."""
    torch.manual_seed(0)
    model, x = ns.create_model("lenet5").eval(), torch.randn(1, 1, 28, 28)
    widths: list[int] = []
    small = ns.prune_iteratively(
        model,
        x,
        steps=3,
        target="params=0.5",
        ignored=[model.conv1],
        finetune=lambda m, step: widths.append(m.conv1.out_channels),
    )
    assert widths == [20, 20, 20] and small.conv1.out_channels == 20  # LeNet-5's conv1 has 20 filters
    assert small.fc1.out_features < model.fc1.out_features  # the rest was pruned


def test_on_round_sees_each_rounds_model_and_plan_before_finetune() -> None:
    """``netsculpt prune --steps`` prints its round lines and composes plan.json from this hook."""
    torch.manual_seed(0)
    model, x = ns.create_model("lenet5").eval(), torch.randn(1, 1, 28, 28)
    seen: list[tuple[str, int, int | None]] = []

    def on_round(m: torch.nn.Module, step: int, plan: ns.PrunePlan | None) -> None:
        seen.append(("round", step, len(plan.keep["fc1"]) if plan and "fc1" in plan.keep else None))
        assert plan is None or m.fc1.out_features == len(plan.keep.get("fc1", range(m.fc1.out_features)))

    small = ns.prune_iteratively(
        model, x, steps=2, ratios={}, ratio=0.5, round_to=1, on_round=on_round,
        finetune=lambda m, step: seen.append(("finetune", step, None)),
    )  # fmt: skip
    # ratio 0.5 in 2 rounds: fc1 keeps ceil(500 * 0.5 ** 0.5) = 354, then 250 (the one-shot width)
    assert seen == [("round", 1, 354), ("finetune", 1, None), ("round", 2, 250), ("finetune", 2, None)]
    assert small.fc1.out_features == 250
    with pytest.raises(PruningError, match=r"on_round= .*a function"):
        ns.prune_iteratively(model, x, steps=2, target="macs=0.5", on_round=3)
