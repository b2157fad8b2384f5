"""The latency lookup table: units, keys, lookups, prediction paths and persistence. No timing thresholds:
only that table entries are measured once, reused, and add up to the predictions."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import netsculpt as ns
from netsculpt.errors import ConfigError
from netsculpt.measure.latency_model import LatencyModel, describe_layer, record_calls
from netsculpt.surgery import PrunePlan

X = torch.randn(1, 3, 16, 16)
FAST = {"runs": 3, "warmup": 1}  # lookups and bookkeeping are under test here, not the timings


def test_units_fuse_conv_bn_activation(small_cnn: nn.Module) -> None:
    calls, units = record_calls(small_cnn, X)
    names = [[calls[i].name for i in unit] for unit in units]
    assert names == [
        ["features.0", "features.1", "features.2"],  # conv + BN + ReLU: one kernel in ONNX Runtime
        ["features.3", "features.4"],  # depthwise conv + ReLU
        ["features.5"],  # pooling stands alone
        ["head"],
    ]
    assert calls[0].in_shape == (1, 3, 16, 16) and calls[0].out_shape == (1, 8, 16, 16)


def test_a_module_called_twice_is_timed_twice() -> None:
    relu = nn.ReLU()
    model = nn.Sequential(nn.Conv2d(3, 4, 1), relu, nn.Conv2d(4, 4, 1), relu)
    calls, units = record_calls(model, X)
    assert [(c.name, c.index) for c in calls] == [("0", 0), ("1", 0), ("2", 0), ("1", 1)]
    assert len(units) == 2  # each conv fuses with the ReLU call that follows it


def test_depthwise_conv_stays_depthwise_at_new_widths() -> None:
    conv = nn.Conv2d(8, 8, 3, padding=1, groups=8)
    key, build = describe_layer(conv, (1, 5, 16, 16), (1, 5, 16, 16))
    assert "g=5" in key and "Conv2d(5,5" in key
    layer = build()
    assert layer(torch.randn(1, 5, 16, 16)).shape == (1, 5, 16, 16)


def test_table_is_measured_once_and_reused(small_cnn: nn.Module) -> None:
    latency = LatencyModel(small_cnn, X, **FAST)
    assert latency.measured == len(latency.table) == 4  # one entry per distinct unit
    # By construction the offset makes the base model's prediction its measurement.
    assert latency.predict_model(small_cnn) == pytest.approx(latency.base_ms)
    latency.predict_model(small_cnn)
    assert latency.measured == 4  # a lookup, not a measurement


class _OvercountingLayers(LatencyModel):
    """Layers timed alone cost 1 ms per 100 weights: their sum exceeds the 0.01 ms whole-network base, as
    a loaded machine or a per-layer session overhead makes it."""

    def _time(self, layers, in_shape) -> float:
        return 1e-2 * sum(p.numel() for layer in layers for p in layer.parameters())


def test_layers_that_overcount_the_network_scale_instead_of_going_negative(small_cnn: nn.Module) -> None:
    latency = _OvercountingLayers(small_cnn, X, base_ms=0.01, **FAST)
    assert latency.offset_ms == 0.0 and latency.scale == pytest.approx(0.01 / latency.base_sum)
    assert latency.predict_model(small_cnn) == pytest.approx(0.01)  # the base still predicts its measurement
    small = ns.prune(small_cnn, X, ratio=0.5)
    assert 0.0 < latency.predict_model(small) < 0.01  # an additive offset would have made this negative


def test_plan_prediction_equals_pruned_model_prediction(small_cnn: nn.Module) -> None:
    """Shapes from the graph (no model built) and from the pruned model itself must agree exactly."""
    small_cnn.eval()
    latency = LatencyModel(small_cnn, X, **FAST)
    graph = ns.trace(small_cnn, X)
    (group,) = graph.prunable_groups
    keep = {group.id: [0, 2, 5]}
    pruned = ns.apply_plan(small_cnn, PrunePlan(keep, {g.id: g.size for g in graph.groups}), X, graph=graph)
    before = latency.measured
    assert latency.predict_keep(graph, keep) == latency.predict_model(pruned)
    assert latency.measured == before + 4  # all four units see fewer channels (the pool's input too)
    assert latency.fraction(graph, {}) == pytest.approx(1.0)


def test_save_and_load_reuse_the_table(small_cnn: nn.Module, tmp_path: Path) -> None:
    latency = LatencyModel(small_cnn, X, clock="wall", **FAST)
    latency.save(tmp_path / "table.json")
    again = LatencyModel.load(tmp_path / "table.json", small_cnn, X)
    assert again.measured == 0 and again.clock == "wall"
    assert again.predict_model(small_cnn) == latency.predict_model(small_cnn)
    with pytest.raises(ConfigError, match="measured for inputs"):
        LatencyModel.load(tmp_path / "table.json", small_cnn, torch.randn(2, 3, 16, 16))


def test_calibration_is_a_least_squares_line(small_cnn: nn.Module) -> None:
    latency = LatencyModel(small_cnn, X, **FAST)
    latency.calibrate([1.0, 2.0, 3.0], [2.5, 4.5, 6.5])  # exactly 2x + 0.5
    assert latency.scale == pytest.approx(2.0) and latency.offset_ms == pytest.approx(0.5)
    with pytest.raises(ConfigError):
        latency.calibrate([1.0], [2.0])


def test_bad_settings(small_cnn: nn.Module) -> None:
    with pytest.raises(ConfigError, match="runtime"):
        LatencyModel(small_cnn, X, runtime="tensorrt")
    with pytest.raises(ConfigError, match="clock"):
        LatencyModel(small_cnn, X, clock="sundial")


def test_layer_it_cannot_rebuild_is_timed_as_is() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.GroupNorm(2, 4))
    latency = LatencyModel(model, X, **FAST)
    assert any(key.startswith("GroupNorm#1@") for key in latency.table)


class _Tokens(nn.Module):
    """Token ids -> embedding -> GRU -> linear: the embedding is timed on ids, the GRU as a layer."""

    def __init__(self) -> None:
        super().__init__()
        self.emb, self.rnn, self.fc = nn.Embedding(30, 8), nn.GRU(8, 6, batch_first=True), nn.Linear(6, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.fc(self.rnn(self.emb(ids))[0])


def test_token_ids_and_recurrent_layers_are_timed() -> None:
    """Before: the embedding was timed on torch.randn ids (a RuntimeError from F.embedding out of
    Target(latency=...) and round_to="auto"), and the GRU, returning a tuple, was left out as fixed cost."""
    model, ids = _Tokens().eval(), torch.randint(0, 30, (2, 5))
    latency = LatencyModel(model, ids, **FAST)
    assert {c.name: c.in_dtype for c in latency.calls}["emb"] == torch.int64
    assert any(key.startswith("Embedding#emb@2x5") for key in latency.table)
    assert any(key.startswith("GRU#rnn@2x5x8") for key in latency.table)


@pytest.mark.slow
def test_onnxruntime_table(small_cnn: nn.Module) -> None:
    latency = LatencyModel(small_cnn, X, runtime="onnxruntime", **FAST)
    assert len(latency.table) == 4 and all(v >= 0 for v in latency.table.values())
    assert latency.predict_model(small_cnn) == pytest.approx(latency.base_ms)
