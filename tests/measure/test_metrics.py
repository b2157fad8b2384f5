"""``measure`` end to end, ``Metrics`` JSON round trip, and serialized size."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from netsculpt.errors import ConfigError
from netsculpt.measure import (
    Metrics,
    count_macs,
    count_params,
    measure,
    peak_activation_bytes,
    serialized_size_bytes,
)


def test_measure_everything(small_cnn: nn.Module) -> None:
    x = torch.randn(1, 3, 16, 16)
    small_cnn.train()
    metrics = measure(small_cnn, x, onnx=True, batch_sizes=(4,), runs=3, warmup=1)
    assert small_cnn.training
    assert metrics.params == count_params(small_cnn)
    assert (metrics.macs, metrics.layers) == count_macs(small_cnn, x)
    assert metrics.peak_activation_bytes == peak_activation_bytes(small_cnn, x)
    assert metrics.size_bytes == serialized_size_bytes(small_cnn)
    assert set(metrics.latency) == {"torch", "onnxruntime"}
    for by_batch in metrics.latency.values():
        assert set(by_batch) == {1, 4}  # batch 1 is always timed, beside the requested sizes
        assert all(ms > 0 for ms in by_batch.values())
    assert metrics.latency_ms == metrics.latency["torch"][1]
    assert metrics.calibration is not None and metrics.threads == torch.get_num_threads()


def test_counts_only_and_json_round_trip(small_cnn: nn.Module) -> None:
    metrics = measure(small_cnn, torch.randn(1, 3, 16, 16), latency=False)
    assert metrics.latency_ms is None and metrics.latency == {} and metrics.calibration is None
    # conv 8*16*16*3*9 + depthwise 8*16*16*9 + head 512*10
    assert metrics.macs == 8 * 256 * 27 + 8 * 256 * 9 + 512 * 10
    text = json.dumps(metrics.to_dict())
    assert Metrics.from_dict(json.loads(text)) == metrics


def test_json_round_trip_keeps_latency_keys_as_ints() -> None:
    metrics = Metrics(1, 2, 3, 4, 5.0, {"torch": {1: 5.0, 8: 20.0}}, [], None, 2)
    back = Metrics.from_dict(json.loads(json.dumps(metrics.to_dict())))
    assert back.latency == {"torch": {1: 5.0, 8: 20.0}}
    with pytest.raises(ConfigError, match="not a netsculpt metrics record"):
        Metrics.from_dict({"params": 1})


def test_bad_batch_size(small_cnn: nn.Module) -> None:
    with pytest.raises(ConfigError, match="batch_sizes= takes a whole number >= 1"):
        measure(small_cnn, torch.randn(1, 3, 16, 16), batch_sizes=(0,))


def test_size_equals_safetensors_file(small_cnn: nn.Module, tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    save_file(small_cnn.state_dict(), str(path))
    assert serialized_size_bytes(small_cnn) == path.stat().st_size
    # payload is every float32 parameter and buffer plus BN's int64 counter; the JSON header adds < 4 KiB
    payload = sum(t.numel() * t.element_size() for t in small_cnn.state_dict().values())
    assert payload < serialized_size_bytes(small_cnn) < payload + 4096


def test_tied_weights_stored_once() -> None:
    class Tied(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(100, 16)
            self.out = nn.Linear(16, 100, bias=False)
            self.out.weight = self.embed.weight

    # one 100x16 float32 matrix, not two
    assert 100 * 16 * 4 < serialized_size_bytes(Tied()) < 2 * 100 * 16 * 4


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.ao.quantization's notice
def test_quantized_model_is_smaller() -> None:
    model = nn.Sequential(nn.Linear(256, 256))
    quantized = torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
    # int8 weights are a quarter of float32; the float32 bias and scales are small next to 256x256
    assert serialized_size_bytes(quantized) < serialized_size_bytes(model) / 3


def test_one_batch_size_is_a_list_of_one(small_cnn: nn.Module) -> None:
    # batch_sizes=4 raised "'int' object is not iterable" from inside measure
    metrics = measure(small_cnn, torch.randn(1, 3, 16, 16), batch_sizes=4, runs=1, warmup=0)
    assert sorted(metrics.latency["torch"]) == [1, 4]


@pytest.mark.parametrize(
    ("option", "value", "accepted"),
    [
        (
            "batch_sizes",
            "16",
            r"a whole number >= 1 or a list of them \(e.g. \[1, 8\]\)",
        ),  # was timed at batches 1 and 6
        (
            "batch_sizes",
            [1.5],
            r"a whole number >= 1 or a list of them \(e.g. \[1, 8\]\)",
        ),  # was timed at batch 1
        ("batch_sizes", None, r"a whole number >= 1 or a list of them \(e.g. \[1, 8\]\)"),
        ("runs", None, "a whole number >= 1"),
        ("runs", 1.5, "a whole number >= 1"),
        ("warmup", "3", "a whole number >= 0"),
        ("latency", "no", "True or False"),  # "no" is truthy: latency was measured
        ("onnx", "yes", "True or False"),
    ],
)
def test_wrong_argument_types_are_named(
    small_cnn: nn.Module, option: str, value: object, accepted: str
) -> None:
    with pytest.raises(ConfigError, match=rf"{option}= takes {accepted}; got {re.escape(repr(value))}"):
        measure(small_cnn, torch.randn(1, 3, 16, 16), **{option: value})


def test_counts_record_the_batch_they_are_for(small_cnn: nn.Module) -> None:
    one = measure(small_cnn, torch.randn(1, 3, 16, 16), latency=False)
    eight = measure(small_cnn, torch.randn(8, 3, 16, 16), runs=1, warmup=0)
    assert (one.batch_size, eight.batch_size) == (1, 8)
    # conv and linear MACs are linear in the batch: the per-sample figure is the batch-1 count
    assert eight.macs == 8 * one.macs and eight.macs_per_sample == one.macs
    assert sorted(eight.latency["torch"]) == [1]  # while latency_ms stays the batch-1 timing
    assert Metrics.from_dict(json.loads(json.dumps(eight.to_dict()))).batch_size == 8
    old_record = {k: v for k, v in eight.to_dict().items() if k != "batch_size"}
    assert Metrics.from_dict(old_record).batch_size is None  # results.json written before the field


class _ListInput(nn.Module):
    def forward(self, images: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack([x.sum() for x in images])


def test_structured_inputs_have_no_batch_size() -> None:
    metrics = measure(_ListInput(), ([torch.randn(3, 4, 4), torch.randn(3, 4, 4)],), latency=False)
    assert metrics.batch_size is None and metrics.macs_per_sample is None


def test_an_int8_artefact_is_refused_naming_what_to_call(tmp_path) -> None:
    """ns.measure counted an int8 ONNX artefact as 0 params, 0 MACs and 16 bytes (its graph is not made
    of torch modules), and with latency failed "cannot time the model on torch"."""
    from netsculpt.measure import measure_latency
    from netsculpt.weights.quantize import quantize_int8

    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10)).eval()
    x = torch.randn(1, 3, 8, 8)
    q = quantize_int8(net, x, [torch.randn(4, 3, 8, 8)], tmp_path)
    with pytest.raises(ConfigError, match=r"int8 onnxruntime artefact .* runtime='onnxruntime'\) times it"):
        measure(q, x, latency=False)
    with pytest.raises(ConfigError, match="time it with runtime='onnxruntime'"):
        measure_latency(q, x, runs=2, warmup=1)  # the default runtime, torch, refuses it
    assert measure_latency(q, x, runs=2, warmup=1, runtime="onnxruntime") > 0


def test_lazy_layers_are_refused_with_what_to_do() -> None:
    # before: torch's raw "Attempted to use an uninitialized parameter" ValueError from deep inside
    import netsculpt as ns

    model = nn.Sequential(nn.LazyConv2d(4, 3), nn.Flatten(), nn.LazyLinear(2))
    x = torch.randn(1, 3, 8, 8)
    with pytest.raises(ConfigError, match=r"lazy layers have no shapes yet \(0\.weight"):
        ns.measure(model, x, latency=False)
    model(x)  # materialised: measured as any model
    assert ns.measure(model, x, latency=False).params == sum(p.numel() for p in model.parameters())
