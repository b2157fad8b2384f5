"""Glue pricing: ops between leaf modules (residual adds, shuffles) shrink with the channels in the
prediction instead of sitting in the fixed offset. Timings are injected: 1 us per input element."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

import netsculpt as ns
from netsculpt.measure.latency_model import LatencyModel

X = torch.randn(1, 3, 4, 4)
FAST = {"runs": 1, "warmup": 0}


class _PerElement(LatencyModel):
    """Every timed unit costs 1 us per element of its input: predictions are exact arithmetic."""

    def _time(self, layers, in_shape) -> float:
        return 1e-3 * math.prod(in_shape)


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 1)
        self.conv2 = nn.Conv2d(8, 8, 1)
        self.head = nn.Conv2d(8, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(x)
        return self.head(self.conv2(y) + y)  # the add runs in no leaf module


class Shuffle(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x).view(1, 2, 4, 4, 4).transpose(1, 2).contiguous()  # ShuffleNet's channel shuffle
        return y.flatten(1)


def test_residual_add_shrinks_with_the_channels() -> None:
    model = Residual().eval()
    latency = _PerElement(model, X, base_ms=1.0, **FAST)
    graph = ns.trace(model, X)
    (group,) = [g for g in graph.prunable_groups if g.size == 8]
    # units: conv1 reads 48 elements, conv2 and head 128; the add is priced over its 128-element output
    assert latency.base_sum == pytest.approx(0.048 + 0.128 + 0.128 + 0.128)
    # Half the channels: conv2, head and the add halve (the add on the line through 128 and 32
    # elements); the offset (1.0 - 0.432) stays. With the add in the offset the prediction was 0.872.
    predicted = latency.predict_keep(graph, {group.id: [0, 1, 2, 3]})
    assert predicted == pytest.approx(0.048 + 0.064 + 0.064 + 0.064 + 0.568)


def test_prediction_from_pruned_model_matches_the_plan_with_glue() -> None:
    model = Residual().eval()
    latency = _PerElement(model, X, base_ms=1.0, **FAST)
    graph = ns.trace(model, X)
    (group,) = [g for g in graph.prunable_groups if g.size == 8]
    keep = {group.id: [0, 2, 5]}
    small = ns.apply_plan(model, ns.PrunePlan(keep, {g.id: g.size for g in graph.groups}), X, graph=graph)
    assert latency.predict_model(small) == pytest.approx(latency.predict_keep(graph, keep))


def test_views_are_free_and_copies_are_priced() -> None:
    from netsculpt.measure.latency_glue import glue_ops

    model = Shuffle().eval()
    latency = _PerElement(model, X, base_ms=1.0, **FAST)
    ops = glue_ops(ns.trace(model, X), latency.leaves)
    assert [op.name.rpartition(".")[2] for op in ops] == [
        "contiguous"
    ]  # view, transpose, flatten move nothing


def test_a_table_saved_before_glue_pricing_keeps_glue_in_the_offset(tmp_path: Path) -> None:
    model = Residual().eval()
    latency = _PerElement(model, X, base_ms=1.0, **FAST)
    path = latency.save(tmp_path / "t.json")
    data = json.loads(path.read_text())
    del data["glue"]  # what an older netsculpt wrote: its offset already holds the add
    data["table"] = {k: v for k, v in data["table"].items() if not k.startswith("Elementwise")}
    path.write_text(json.dumps(data))
    loaded = LatencyModel.load(path, model, X)
    assert not loaded.glue and loaded.base_sum == pytest.approx(0.048 + 0.128 + 0.128)
