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


def _bn_net() -> nn.Module:
    """A training model whose batch norm the user froze (eval inside train): per-module flags to keep."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()).train()
    model[1].eval()
    return model


def test_bench_gives_every_module_its_own_flag_back(monkeypatch) -> None:
    from netsculpt.runtimes.base import RUNTIMES
    from netsculpt.runtimes.torch_rt import EagerRuntime

    # a second runtime that, like torch and compile, enters eval mode in prepare and leaves it in close:
    # closed in prepare order, the second one's "before" (already eval) was restored last
    second = EagerRuntime()
    second.name = "torch2"
    monkeypatch.setitem(RUNTIMES, "torch2", second)
    model = _bn_net()
    before = [m.training for m in model.modules()]
    rows = bench.bench_model(model, torch.randn(1, 3, 8, 8), ["torch", "torch2"], runs=2, warmup=1)
    assert all(row.error is None for row in rows)
    assert [m.training for m in model.modules()] == before == [True, True, False, True]


def test_no_memory_gain_seen_is_no_figure_not_zero_bytes(monkeypatch) -> None:
    """A runtime that reuses memory an earlier one freed showed "0 B" peak memory in `netsculpt bench`."""

    class Flat(bench._PeakRss):
        @property
        def added(self) -> int:
            return 0

    monkeypatch.setattr(bench, "_PeakRss", Flat)
    (row,) = bench.bench_model(nn.Linear(3, 2), torch.zeros(1, 3), ["torch"], runs=2, warmup=1, rounds=1)
    assert row.error is None and row.peak_memory_bytes is None


class _Fake:
    """A Prepared-like candidate that logs its calls and closes; ``fail`` raises on its first call."""

    def __init__(self, name: str, log: list[str], fail: bool = False) -> None:
        self.name, self.log, self.fail = name, log, fail

    def call(self) -> None:
        self.log.append(f"call {self.name}")
        if self.fail:
            raise RuntimeError("kernel missing")

    def close(self) -> None:
        self.log.append(f"close {self.name}")


def test_one_timing_loop_alternates_closes_in_reverse_and_reports_a_failed_warmup(monkeypatch) -> None:
    """bench and the int8 selection share time_alternating: a candidate whose warm-up raised is reported
    and still closed (its prepare may have changed the model), the rest are timed round by round."""
    ticks = iter(range(0, 10**9, 1_000_000))
    monkeypatch.setattr(bench, "clock", lambda threads: lambda: next(ticks))
    log: list[str] = []
    errors: dict[str, str] = {}
    samples = bench.time_alternating(
        {n: (lambda n=n: _Fake(n, log, fail=n == "b")) for n in "abc"},
        threads=1, runs=3, warmup=1, rounds=2,
        on_error=lambda name, exc: errors.setdefault(name, str(exc)),
    )  # fmt: skip
    assert errors == {"b": "kernel missing"}
    assert samples == {"a": [[1.0, 1.0]] * 2, "c": [[1.0, 1.0]] * 2}  # ceil(3 / 2) calls a round
    timed = [e for e in log[3:] if e.startswith("call")]
    assert timed == ["call a", "call a", "call c", "call c"] * 2  # alternating rounds
    assert log[-3:] == ["close c", "close b", "close a"]
    with pytest.raises(RuntimeError, match="kernel missing"):  # no on_error: the error propagates
        bench.time_alternating(
            {"b": lambda: _Fake("b", [], fail=True)}, threads=1, runs=1, warmup=1, rounds=1
        )
