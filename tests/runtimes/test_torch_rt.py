"""The compile runtime leaves the user's process as it found it: no inductor setting changed for later
compilations, no mark on the user's module (slow: each test compiles)."""

from __future__ import annotations

import pytest
import torch
import torch._inductor.config as inductor_config
from torch import nn

from netsculpt.runtimes import bench_model, get_runtime

pytestmark = [pytest.mark.runtimes, pytest.mark.slow]


def test_bench_on_torch_and_compile_keeps_a_training_model_training() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()).train()
    rows = bench_model(model, torch.randn(1, 3, 8, 8), ["torch", "compile"], runs=2, warmup=1)
    assert all(row.error is None for row in rows)
    assert all(m.training for m in model.modules())
    assert "_is_torch_compile" not in vars(model)  # torch.compile's mark, set on the module it wraps


def test_timing_an_int8_program_leaves_inductor_freezing_off(tmp_path) -> None:
    from netsculpt.weights.int8_runtimes import quantize_pt2e

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 10)).eval()
    x = torch.randn(1, 3, 8, 8)
    q = quantize_pt2e(net, x, [torch.randn(4, 3, 8, 8)], tmp_path)
    assert inductor_config.freezing is False
    prepared = get_runtime("compile").prepare(q, (x,), threads=1)
    try:
        prepared.call()
    finally:
        prepared.close()
    # freezing for the whole process made a user's later torch.compile constant-fold its weights, so an
    # optimizer step or load_state_dict no longer changed the compiled model's output
    assert inductor_config.freezing is False
    user = nn.Linear(4, 2).eval()
    compiled = torch.compile(user)
    v = torch.randn(1, 4)
    with torch.no_grad():
        compiled(v)
        user.weight.mul_(2)
        assert torch.allclose(compiled(v), user(v), atol=1e-6)
    torch._dynamo.reset()
