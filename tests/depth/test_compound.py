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
    (side, other) = result.resolution
    assert side == other < 32 and result.macs <= 0.51
    assert any(c["depth"] < 1 for c in result.candidates)  # depth was searched, not only width
    small_x = torch.randn(1, 3, *result.resolution)
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
    small_x = torch.randn(1, 3, *capped.resolution)
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


def test_non_square_input_keeps_its_aspect() -> None:
    """A 24x64 input was squared: the result said 56 and the model was measured at 56x56."""
    model = ns.create_model("resnet20_cifar", num_classes=10).eval()
    x = torch.randn(1, 3, 24, 64)
    result = compound_scale(model, x, target=ns.Target(macs=0.5), grid=(1.0,))
    height, width = result.resolution
    assert height < 24 and width < 64 and abs(height / width - 24 / 64) < 0.1
    small_x = torch.randn(1, 3, height, width)
    assert count_macs(result.model, small_x)[0] == pytest.approx(result.macs * count_macs(model, x)[0])
    assert result.macs <= 0.51 and result.model(small_x).shape == (1, 10)


class _Block1d(torch.nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1, self.bn = torch.nn.Conv1d(c, c, 3, padding=1), torch.nn.BatchNorm1d(c)
        self.conv2, self.relu = torch.nn.Conv1d(c, c, 3, padding=1), torch.nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(x + self.conv2(self.relu(self.bn(self.conv1(x)))))


class _Net1d(torch.nn.Module):
    """A residual Conv1d model on (N, C, L) sequences."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = torch.nn.Conv1d(4, 16, 5, padding=2)
        self.blocks = torch.nn.Sequential(*[_Block1d(16) for _ in range(4)])
        self.fc = torch.nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.blocks(self.stem(x)).mean(-1))


def test_sequence_input_scales_its_length() -> None:
    """Conv1d input used to fail inside torch's 2-D bilinear interpolate."""
    model = _Net1d().eval()
    x = torch.randn(1, 4, 128)
    result = compound_scale(model, x, target=ns.Target(macs=0.5), grid=(1.0,))
    (length,) = result.resolution
    assert length < 128 and result.macs <= 0.51
    assert result.model(torch.randn(1, 4, length)).shape == (1, 10)


def test_input_compound_scaling_cannot_resize_is_refused_clearly() -> None:
    model = ns.create_model("resnet20_cifar", num_classes=10).eval()
    with pytest.raises(ns.NetsculptError, match=r"\(N, C, H, W\).*got \(1, 3\)"):
        compound_scale(model, torch.randn(1, 3), target=ns.Target(macs=0.5))


def test_a_model_without_residual_blocks_scales_width_and_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    """No removable blocks used to raise plan_depth's "no removable residual blocks"; the depth axis is
    now skipped (and said) while width x resolution meet the budget."""
    import netsculpt.depth.compound as compound
    from tests.search import _tiny

    said: list[str] = []
    monkeypatch.setattr(compound, "info", said.append)
    model = _tiny.trained_model(epochs=1)
    x = torch.randn(1, *_tiny.SHAPE[:1], 16, 16)
    result = compound_scale(model, x, target=ns.Target(macs=0.5), resolution_step=2)
    assert result.removed == [] and result.depth == 1.0 and result.macs <= 0.51
    assert any("no removable residual blocks" in line for line in said)
    assert result.resolution[0] < 16 and result.model(torch.randn(1, 3, *result.resolution)).shape[0] == 1
