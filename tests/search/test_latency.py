"""Latency-aware search: validation of the lookup table on random variants, and a latency target."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

import netsculpt as ns
from netsculpt.measure.latency_model import LatencyModel
from netsculpt.search import GreedyConfig, search_widths
from netsculpt.search.latency import calibrate_latency_model, random_keep, validate_latency_model

FAST = {"runs": 3, "warmup": 1}  # the bookkeeping is under test, not the timings


def test_random_variants_respect_pinned_channels(tiny) -> None:
    graph = ns.trace(tiny.model, tiny.example)
    keep = random_keep(graph, np.random.default_rng(0), low=0.3)
    for gid, kept in keep.items():
        group = graph.group(gid)
        assert 1 <= len(kept) < group.size
        assert all(i in kept for i in np.flatnonzero(~group.prunable))


def test_validation_reports_errors_per_variant(tiny) -> None:
    latency = LatencyModel(tiny.model, tiny.example, **FAST)
    check = validate_latency_model(latency, tiny.model, tiny.example, variants=3, rounds=1)
    assert len(check.variants) == 3
    for v in check.variants:
        assert v["predicted_ms"] == v["predicted_from_model_ms"]  # graph shapes == the pruned model's
        assert v["error"] == abs(v["predicted_ms"] - v["measured_ms"]) / v["measured_ms"]
    assert check.median_error <= check.worst_error
    assert check.median_fraction_error <= check.worst_fraction_error
    assert check.base_measured_ms > 0
    assert check.median_spread == 0.0  # one round: nothing to disagree with
    assert json.loads(json.dumps(check.to_dict()))["runtime"] == "torch"


class ParamLatency(LatencyModel):
    """A table whose "measurements" are 1 us per weight plus 5 us per unit: deterministic, so the
    search's use of the table can be checked without depending on this machine's timings."""

    def _time(self, layers, in_shape) -> float:
        return 1e-3 * sum(p.numel() for layer in layers for p in layer.parameters()) + 5e-3


class LinearMachine(ParamLatency):
    """A "machine" on which a network takes exactly 2x its table sum plus 0.5 ms."""

    def measure_model(self, model, runs=None) -> float:
        return 2.0 * self.table_sum_model(model) + 0.5


def test_calibration_recovers_the_machine_line(tiny) -> None:
    latency = LinearMachine(tiny.model, tiny.example, base_ms=1.0, **FAST)
    calibrate_latency_model(latency, tiny.model, tiny.example, variants=3, rounds=1)
    assert latency.scale == pytest.approx(2.0) and latency.offset_ms == pytest.approx(0.5)
    check = validate_latency_model(latency, tiny.model, tiny.example, variants=3, rounds=1)
    assert check.worst_error == pytest.approx(0.0, abs=1e-9)  # held-out variants lie on the same line
    assert check.worst_fraction_error == pytest.approx(0.0, abs=1e-9)


def test_latency_target_search_saves_its_table(tiny, tmp_path: Path) -> None:
    latency = ParamLatency(tiny.model, tiny.example, base_ms=3.0, **FAST)
    result = search_widths(
        tiny.model, tiny.example, "greedy", "latency=0.7", tiny.train, tiny.val, GreedyConfig(step=0.25),
        out_dir=tmp_path, latency_model=latency,
    )  # fmt: skip
    assert result.plan.meta["predicted"]["latency"] <= 0.7
    assert result.plan.meta["predicted"]["latency_ms"] > 0
    costs = [p["cost"]["latency"] for p in result.history["trajectory"]]
    assert all(b < a for a, b in itertools.pairwise(costs))
    saved = LatencyModel.load(tmp_path / "latency_table.json", tiny.model, tiny.example)
    assert saved.table == latency.table  # a resumed search replays against the same costs
