"""Compound scaling meets a MACs budget with depth, width and resolution together."""

from __future__ import annotations

import math

import pytest
import torch

import netsculpt as ns
from netsculpt.depth import BudgetError
from netsculpt.depth.compound import ALPHA, BETA, GAMMA, compound_point, compound_scale
from netsculpt.measure.macs import count_macs


def test_compound_point_follows_the_rule() -> None:
    d, w, r = compound_point(0.5)
    assert d < 1 and w < 1 and r < 1
    assert math.isclose(d * w**2 * r**2, 0.5, rel_tol=1e-6)
    assert math.isclose(ALPHA * BETA**2 * GAMMA**2, 1.92, rel_tol=0.01)


@pytest.mark.slow
def test_compound_meets_budget_and_runs_at_new_resolution() -> None:
    model = ns.create_model("resnet20_cifar", num_classes=10).eval()
    x = torch.randn(1, 3, 32, 32)
    result = compound_scale(model, x, target=ns.Target(macs=0.5))
    assert result.resolution < 32 and result.macs <= 0.51
    assert any(c["depth"] < 1 for c in result.candidates)  # depth was searched, not only width
    small_x = torch.randn(1, 3, result.resolution, result.resolution)
    assert count_macs(result.model, small_x)[0] <= 0.51 * count_macs(model, x)[0]
    assert result.model(small_x).shape == (1, 10)


def test_compound_takes_macs_only() -> None:
    with pytest.raises(ns.NetsculptError, match="Target\\(macs"):
        compound_scale(
            ns.create_model("resnet20_cifar", num_classes=10),
            torch.randn(1, 3, 32, 32),
            target=ns.Target(params=0.5),
        )
    assert issubclass(BudgetError, ns.NetsculptError)


def _fake_latency(small, x, base, bx, runs) -> float:
    """Deterministic stand-in for the measured ratio: the fraction of convs kept (no timing in tests)."""

    def convs(m):
        return sum(isinstance(c, torch.nn.Conv2d) for c in m.modules())

    return convs(small) / convs(base)


def test_latency_cap_moves_the_rule_down_in_depth(monkeypatch: pytest.MonkeyPatch) -> None:
    import netsculpt.depth.compound as compound

    monkeypatch.setattr(compound, "latency_ratio", _fake_latency)
    model = ns.create_model("resnet20_cifar", num_classes=10).eval()
    x = torch.randn(1, 3, 32, 32)
    free = compound_scale(model, x, target=ns.Target(macs=0.5), grid=(1.0,))
    capped = compound_scale(model, x, target=ns.Target(macs=0.5), grid=(1.0,), latency=0.6)
    assert capped.latency is not None and capped.latency <= 0.6
    assert capped.depth < free.depth and capped.macs <= 0.51
    small_x = torch.randn(1, 3, capped.resolution, capped.resolution)
    assert capped.model(small_x).shape == (1, 10)


def test_unreachable_latency_cap_reports_the_closest(monkeypatch: pytest.MonkeyPatch) -> None:
    import netsculpt.depth.compound as compound

    monkeypatch.setattr(compound, "latency_ratio", _fake_latency)
    model = ns.create_model("resnet20_cifar", num_classes=10).eval()
    with pytest.raises(BudgetError, match=r"latency=0\.05; closest") as err:
        compound_scale(
            model, torch.randn(1, 3, 32, 32), target=ns.Target(macs=0.5), grid=(1.0,), latency=0.05
        )
    assert 0.05 < err.value.closest < 1
    with pytest.raises(ns.NetsculptError, match="fraction"):
        compound_scale(model, torch.randn(1, 3, 32, 32), target=ns.Target(macs=0.5), latency=1.5)
