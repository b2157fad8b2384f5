"""bench_model's spread: the range of the rounds' medians, as a share of the overall median."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from netsculpt.runtimes import bench


def test_round_spread_is_the_range_of_the_round_medians(monkeypatch) -> None:
    # two rounds of two calls: 1.0 ms each in the first, 1.2 ms each in the second
    ticks = iter([0, 1_000_000, 1_000_000, 2_000_000, 2_000_000, 3_200_000, 3_200_000, 4_400_000])
    monkeypatch.setattr(bench, "clock", lambda threads: lambda: next(ticks))
    (row,) = bench.bench_model(nn.Linear(3, 2), torch.zeros(1, 3), ["torch"], runs=4, warmup=1, rounds=2)
    assert row.latency_ms == pytest.approx(1.1)
    assert row.round_spread_pct == pytest.approx((1.2 - 1.0) / 1.1 * 100)


def test_one_round_has_no_spread() -> None:
    (row,) = bench.bench_model(nn.Linear(3, 2), torch.zeros(1, 3), ["torch"], runs=2, warmup=1, rounds=1)
    assert row.latency_ms > 0 and row.round_spread_pct is None
