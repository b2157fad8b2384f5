"""Mixed int8/float under an ONNX Runtime latency budget: the budget is a real, measured quantity."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from netsculpt.errors import ConfigError, PruningError
from netsculpt.search.evaluator import take_batches
from netsculpt.weights.mixed_int import MixedIntConfig, quantize_mixed
from tests.search import _tiny

pytest.importorskip("onnxruntime")


@pytest.mark.slow
def test_mixed_int8_meets_a_reachable_budget(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    model = _tiny.trained_model()
    train, val = _tiny.loaders()
    held = take_batches(val, 2, "held-out")
    config = MixedIntConfig(episodes=3, warmup=1, runs=10, calibration_batches=2)
    loose = quantize_mixed(model, _tiny.example(), train, held, 1e3, tmp_path / "loose", config)
    # a budget above the float latency: every walk keeps all layers float; the pick is the better of that
    # and the all-int8 candidate, each timed, so the measured latency is within the budget
    assert loose.measured_ms <= 1e3 and set(loose.int8_layers) <= {"conv1", "conv2", "conv3", "fc"}
    assert loose.history["candidates_within_budget"] == loose.history["candidates"] >= 1
    assert loose.model.path.exists() and loose.model(_tiny.example()).shape == (1, _tiny.CLASSES)
    with pytest.raises(PruningError, match="can never be met"):
        quantize_mixed(model, _tiny.example(), train, held, 1e-6, tmp_path / "tight", config)


def test_bad_budget_and_nothing_to_act_on(tmp_path: Path) -> None:
    train, val = _tiny.loaders()
    held = take_batches(val, 1, "held-out")
    with pytest.raises(ConfigError, match="budget_ms"):
        quantize_mixed(_tiny.TinyCNN(), _tiny.example(), train, held, -1.0, tmp_path)
    with pytest.raises(PruningError, match="nothing to act on"):
        quantize_mixed(torch.nn.Sequential(torch.nn.ReLU()), _tiny.example(), train, held, 1.0, tmp_path)
