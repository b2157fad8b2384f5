"""A latency target below the table's fixed offset: the error names the fixed share, not only pinned
channels (on mobilenet_v3_small in eager PyTorch, 96x96, half the latency is per-call overhead)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import netsculpt as ns
from netsculpt.errors import PruningError
from netsculpt.measure.latency_model import LatencyModel

X = torch.randn(1, 3, 8, 8)


class _PerElement(LatencyModel):
    """Injected timings: 1 us per input element of a unit, and a network measures as the table says."""

    def _time(self, layers, in_shape) -> float:
        return 1e-3 * math.prod(in_shape)

    def measure_model(self, model, runs=None, repeats=1) -> float:  # the offset is real: fixed 10 ms base
        return self.table_sum_model(model) + 10.0 - self.base_sum


def test_unreachable_latency_target_names_the_fixed_share() -> None:
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 4, 1)).eval()
    latency = _PerElement(model, X, base_ms=10.0, runs=1, warmup=0)  # the layers sum to ~1.2 ms of 10
    with pytest.raises(PruningError, match=r"8\d% of the predicted latency is fixed cost") as err:
        ns.plan_pruning(model, X, target=ns.Target(latency=0.5), latency=latency, round_to=1)
    assert "measured end to end" in str(err.value)  # the floor was checked before it was reported
