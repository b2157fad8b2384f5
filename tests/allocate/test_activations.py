"""Activation volume from the traced graph, and the ``"fast"`` strategy that prices cuts by it."""

from __future__ import annotations

import pytest
import torch

import netsculpt as ns
from netsculpt.allocate.activations import activation_fraction, activation_price, activation_weights
from netsculpt.errors import PruningError
from netsculpt.measure import count_macs


def _written(model: torch.nn.Module, x: torch.Tensor) -> int:
    """Elements the leaf modules write in one forward pass (hooks: independent of the graph)."""
    total = [0]
    leaves = [m for m in model.modules() if not list(m.children()) and not isinstance(m, torch.nn.Dropout)]
    handles = [
        m.register_forward_hook(lambda m, a, out: total.__setitem__(0, total[0] + out.numel()))
        for m in leaves
    ]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return total[0]


@pytest.fixture(scope="module")
def mobilenet():
    torch.manual_seed(0)
    return ns.create_model("mobilenetv2_cifar", num_classes=10).eval(), torch.randn(1, 3, 32, 32)


def test_weights_add_up_to_what_the_model_writes(mobilenet) -> None:
    model, x = mobilenet
    graph = ns.trace(model, x)
    per, total = activation_weights(graph)
    # leaf modules plus the residual adds and the flatten-free pooling: within 3% of the hooks' count
    assert total == pytest.approx(_written(model, x), rel=0.03)
    assert all(w.shape == (g.size,) and (w >= 0).all() for g in graph.groups for w in [per[g.id]])
    stem = graph.prunable_groups[0]  # the 32x32 stem writes more per channel than the 4x4 last block
    last = graph.prunable_groups[-1]
    assert per[stem.id].mean() > per[last.id].mean()


def test_fraction_predicts_the_pruned_models_volume(mobilenet) -> None:
    model, x = mobilenet
    plan, graph = ns.plan_pruning(model, x, target=ns.Target(macs=0.5))
    small = ns.apply_plan(model, plan, x, graph=graph)
    got = _written(small, x) / _written(model, x)
    assert activation_fraction(graph, plan.keep) == pytest.approx(got, abs=0.02)
    assert activation_fraction(graph, {}) == pytest.approx(1.0)


def test_fast_meets_the_same_macs_target_and_writes_less(mobilenet) -> None:
    model, x = mobilenet
    base = count_macs(model, x)[0]
    out = {}
    for strategy in ("global", "fast"):
        plan, graph = ns.plan_pruning(model, x, target=ns.Target(macs=0.5), strategy=strategy)
        small = ns.apply_plan(model, plan, x, graph=graph)
        out[strategy] = (count_macs(small, x)[0] / base, activation_fraction(graph, plan.keep))
        assert plan.meta["strategy"] == strategy
    for macs, _ in out.values():
        assert 0.5 * 0.9 <= macs <= 0.5  # the same re-solve: the same exactness as global
    assert out["fast"][1] < out["global"][1] - 0.05


def test_price_is_the_square_root_of_the_activation_share(mobilenet) -> None:
    model, x = mobilenet
    graph = ns.trace(model, x)
    per, _ = activation_weights(graph)
    price = activation_price(graph)
    g = graph.prunable_groups[0]
    h = graph.prunable_groups[-1]
    ratio = (per[g.id][0] / per[h.id][0]) ** 0.5
    assert price[g.id][0] / price[h.id][0] == pytest.approx(ratio, rel=1e-6)


def test_unknown_strategy_names_the_choices(mobilenet) -> None:
    model, x = mobilenet
    with pytest.raises(PruningError, match="uniform, global, fast"):
        ns.plan_pruning(model, x, target=ns.Target(macs=0.5), strategy="fastest")
