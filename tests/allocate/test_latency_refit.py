"""Latency targets are checked end to end and the table's line refitted to the measurement. The
"runtime" is injected: the network's true latency is 1.5x its table sum (what the layers timed alone
miss shrinks with them), while the table anchored at the base puts that miss in a fixed offset."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import netsculpt as ns
from netsculpt.errors import PruningError
from netsculpt.measure.latency_model import LatencyModel

X = torch.randn(1, 3, 8, 8)


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
        nn.Conv2d(32, 4, 1),
    ).eval()  # fmt: skip


class _Proportional(LatencyModel):
    """Units cost 1 us per input element alone; a whole network runs at ``TRUE`` times its table sum."""

    TRUE = 1.5

    def _time(self, layers, in_shape) -> float:
        return 1e-3 * math.prod(in_shape)

    def measure_model(self, model, runs=None, repeats=1) -> float:
        return self.TRUE * self.table_sum_model(model)


def _true_fraction(latency: LatencyModel, model: nn.Module, small: nn.Module) -> float:
    return latency.table_sum_model(small) / latency.table_sum_model(model)


def test_latency_target_lands_on_the_measured_latency() -> None:
    model = _model()
    latency = _Proportional(model, X, base_ms=None, runs=1, warmup=0)
    assert latency.offset_ms > 0  # the anchor put the missing third in a fixed offset
    plan, graph = ns.plan_pruning(model, X, target=ns.Target(latency=0.5), latency=latency, round_to=1)
    small = ns.apply_plan(model, plan, X, graph=graph)
    # the table alone lands at 0.25 of the true latency; one refit through the measured plan fixes it
    assert _true_fraction(latency, model, small) == pytest.approx(0.5, abs=0.03)
    assert plan.meta["latency_checks"][0]["measured"] < 0.4
    assert latency.offset_ms == pytest.approx(0.0, abs=1e-9) and latency.scale == pytest.approx(1.5)


def test_a_floor_the_table_invents_is_measured_before_it_is_reported() -> None:
    model = _model()
    latency = _Proportional(model, X, base_ms=None, runs=1, warmup=0)
    plan, _ = ns.plan_pruning(model, X, target=ns.Target(latency=0.3), latency=latency, round_to=1)
    assert plan.meta["latency_checks"][0]["predicted"] > 0.3  # the table's floor, measured lower


def test_refit_zero_trusts_the_table() -> None:
    from netsculpt.allocate import target_plan

    model = _model()
    latency = _Proportional(model, X, base_ms=None, runs=1, warmup=0)
    graph = ns.trace(model, X)
    scores = {g.id: torch.rand(g.size).numpy() for g in graph.groups}
    with pytest.raises(PruningError, match="unreachable"):
        target_plan(model, X, graph, scores, ns.Target(latency=0.3), latency=latency, refit=0)


class _Unmoved(_Proportional):
    """A runtime on which pruning changes nothing end to end (every model measures 1 ms)."""

    def measure_model(self, model, runs=None, repeats=1) -> float:
        return 1.0


def test_a_measured_miss_is_said() -> None:
    model = _model()
    latency = _Unmoved(model, X, base_ms=None, runs=1, warmup=0)
    with pytest.warns(ns.errors.NetsculptWarning, match=r"measured 1\.000 of the original"):
        plan, _ = ns.plan_pruning(model, X, target=ns.Target(latency=0.5), latency=latency, round_to=1)
    assert plan.meta["measured"] == 1.0 and len(plan.meta["latency_checks"]) == 3


class _Quadratic(_Proportional):
    """A network that speeds up faster than its table sum falls: measured = sum^2 / base sum."""

    def measure_model(self, model, runs=None, repeats=1) -> float:
        total = self.table_sum_model(model)
        return total * total / self.table_sum_model(self._base)


def test_a_network_faster_than_its_table_is_followed_with_a_negative_offset() -> None:
    model = _model()
    _Quadratic._base = model
    latency = _Quadratic(model, X, base_ms=None, runs=1, warmup=0)
    plan, graph = ns.plan_pruning(model, X, target=ns.Target(latency=0.5), latency=latency, round_to=1)
    small = ns.apply_plan(model, plan, X, graph=graph)
    # the table alone lands at 0.25; a line through the origin would never move from there
    assert plan.meta["latency_checks"][0]["measured"] < 0.3
    assert _true_fraction(latency, model, small) ** 2 == pytest.approx(0.5, abs=0.04)
