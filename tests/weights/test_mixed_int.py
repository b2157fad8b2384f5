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


@pytest.mark.slow
def test_an_interrupted_mixed_search_resumes_without_timing_again(tmp_path: Path, monkeypatch) -> None:
    from netsculpt.weights import mixed_int

    model, train, held = _trained()
    config = MixedIntConfig(episodes=4, warmup=1, runs=5, calibration_batches=2)
    timed = mixed_int._time
    calls: list[int] = []

    def dies_at(n: int | None):
        return _timer_killed_at(timed, calls, n)

    # float, all-int8, one per layer kept float (4), all-int8 candidate, then the episodes' candidates
    monkeypatch.setattr(mixed_int, "_time", dies_at(9))
    with pytest.raises(KeyboardInterrupt):
        quantize_mixed(model, _tiny.example(), train, held, 1e3, tmp_path / "m", config)
    with pytest.raises(ConfigError, match="resume"):
        quantize_mixed(model, _tiny.example(), train, held, 1e3, tmp_path / "m", config)
    calls.clear()
    monkeypatch.setattr(mixed_int, "_time", dies_at(None))
    result = quantize_mixed(model, _tiny.example(), train, held, 1e3, tmp_path / "m", config, resume=True)
    # no layer is timed again; at most the episodes left (4 - 1 finished) and the final pick are
    assert len(calls) <= 3 + 1
    assert len(result.history["episodes"]) == config.episodes
    assert result.measured_ms <= 1e3 and result.model.path.exists()


@pytest.mark.slow
def test_a_run_killed_while_timing_layers_keeps_the_layers_it_timed(tmp_path: Path, monkeypatch) -> None:
    """Nothing was saved before every layer had been timed: a kill there lost all of it."""
    import json

    from netsculpt.weights import mixed_int

    model, train, held = _trained()
    config = MixedIntConfig(episodes=2, warmup=1, runs=3, calibration_batches=2)
    timed = mixed_int._time
    # float, all-int8, the first layer; killed while timing the second
    monkeypatch.setattr(mixed_int, "_time", _timer_killed_at(timed, [], 4))
    with pytest.raises(KeyboardInterrupt):
        quantize_mixed(model, _tiny.example(), train, held, 1e3, tmp_path / "m", config)
    state = json.loads(next((tmp_path / "m" / "search").glob("*.json")).read_text())
    first = state["progress"]["timing_partial"]["extra_ms"]
    assert list(first) == ["conv1"]
    monkeypatch.setattr(mixed_int, "_time", timed)
    result = quantize_mixed(model, _tiny.example(), train, held, 1e3, tmp_path / "m", config, resume=True)
    assert result.history["extra_ms"]["conv1"] == first["conv1"]  # kept, not timed again


def _timer_killed_at(timed, calls: list[int], n: int | None):
    """``timed`` that raises KeyboardInterrupt on its ``n``-th call (counted in ``calls``; None: never)."""

    def time_it(*args, **kwargs):
        calls.append(1)
        if n is not None and len(calls) >= n:
            raise KeyboardInterrupt
        return timed(*args, **kwargs)

    return time_it


def _trained():
    """A trained tiny CNN, its training loader and two held-out batches (one thread: timings are real)."""
    torch.set_num_threads(1)
    train, val = _tiny.loaders()
    return _tiny.trained_model(), train, take_batches(val, 2, "held-out")


@pytest.mark.slow
def test_a_pick_measured_over_the_budget_is_said_not_returned_silently(tmp_path: Path, monkeypatch) -> None:
    from netsculpt.weights import mixed_int

    model, train, held = _trained()
    calls: list[int] = []

    def drifting(*args, **kwargs):  # the per-layer timings fit the budget; every later measure does not
        calls.append(1)
        return 0.5 if len(calls) <= 6 else 2.0  # float, all-int8, four layers

    monkeypatch.setattr(mixed_int, "_time", drifting)
    config = MixedIntConfig(episodes=2, warmup=1, runs=2, calibration_batches=2)
    with pytest.warns(UserWarning, match="over the 1.0 ms budget"):
        result = quantize_mixed(model, _tiny.example(), train, held, 1.0, tmp_path / "m", config)
    assert result.measured_ms == 2.0 and result.history["candidates_within_budget"] == 0
