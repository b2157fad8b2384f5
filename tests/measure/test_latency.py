"""Latency plumbing and CPU calibration. No timing thresholds: only that numbers exist and add up."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from netsculpt.errors import ConfigError
from netsculpt.measure import Calibration, cpu_calibration, measure_latency
from netsculpt.measure.latency import median_ms


def test_median_counts_warmup_and_runs() -> None:
    calls = []
    value = median_ms(lambda: calls.append(1), runs=7, warmup=3)
    assert len(calls) == 3 + 7  # every warm-up call is made, and each timed run once
    assert value >= 0


def test_measure_latency_runs_in_eval_without_grad(small_cnn: nn.Module) -> None:
    seen = []
    small_cnn.register_forward_hook(lambda m, i, o: seen.append((m.training, torch.is_grad_enabled())))
    small_cnn.train()
    assert measure_latency(small_cnn, torch.randn(1, 3, 16, 16), runs=3, warmup=1) > 0
    assert set(seen) == {(False, False)}
    assert small_cnn.training


def test_bad_arguments() -> None:
    model = nn.Linear(2, 2)
    with pytest.raises(ConfigError, match="runs= takes a whole number >= 1"):
        measure_latency(model, torch.randn(1, 2), runs=0)
    with pytest.raises(ConfigError, match="choose one of torch, compile, onnxruntime, openvino"):
        measure_latency(model, torch.randn(1, 2), runtime="tensorrt")


def test_cpu_calibration_is_plausible_and_leaves_threads_alone() -> None:
    threads = torch.get_num_threads()
    calibration = cpu_calibration()
    assert torch.get_num_threads() == threads
    assert isinstance(calibration, Calibration)
    # Any CPU from the last 20 years does 0.1-1000 GFLOP/s on one core; a 200k-step loop takes 1-5000 ms.
    assert 0.1 < calibration.matmul_gflops < 1000
    assert 1 < calibration.python_loop_ms < 5000
    assert "GFLOP/s" in str(calibration) and "ms" in str(calibration)
