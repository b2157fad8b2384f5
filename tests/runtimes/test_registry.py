"""Every registered runtime computes what eager PyTorch computes, and failures become rows, not crashes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import netsculpt as ns
from netsculpt.errors import UnknownNameError
from netsculpt.measure import LatencyModel, measure_latency
from netsculpt.runtimes import RuntimeUnsupported, bench_model, get_runtime, parse_runtimes, runtime_names

pytestmark = pytest.mark.runtimes  # own pytest process in `make test` (see Makefile)

FAST = [
    r for r in runtime_names() if r != "compile"
]  # compile is covered once, below (it compiles for seconds)


@pytest.fixture(scope="module")
def lenet() -> tuple[nn.Module, torch.Tensor]:
    return ns.create_model("lenet5").eval(), torch.randn(
        2, 1, 28, 28, generator=torch.Generator().manual_seed(0)
    )


def test_registry_lists_the_four_cpu_runtimes_and_aliases() -> None:
    assert runtime_names() == ["torch", "compile", "onnxruntime", "openvino"]
    assert parse_runtimes("eager,ort,ov,inductor") == ["torch", "onnxruntime", "openvino", "compile"]
    with pytest.raises(UnknownNameError, match="choose one of torch, compile, onnxruntime, openvino"):
        get_runtime("tensorrt")


@pytest.mark.parametrize("name", FAST)
def test_runtime_outputs_match_eager(name, lenet) -> None:
    model, x = lenet
    prepared = get_runtime(name).prepare(model, (x,), threads=1)
    try:
        other = torch.randn_like(x)
        (y,) = prepared.run((other,))
    finally:
        prepared.close()
    with torch.no_grad():
        # float32 runtimes reorder sums; 1e-4 is the project's bar for "computes the same"
        assert torch.allclose(y, model(other), atol=1e-4)


@pytest.mark.slow
def test_compile_runtime_and_its_latency_table(lenet) -> None:
    model, x = lenet
    prepared = get_runtime("compile").prepare(model, (x,), threads=1)
    try:
        (y,) = prepared.run((x,))
    finally:
        prepared.close()
    with torch.no_grad():
        assert torch.allclose(y, model(x), atol=1e-4)
    table = LatencyModel(model, x[:1], runtime="compile", runs=3, warmup=1)
    assert table.runtime == table.backend == "compile" and table.measured >= 5 and table.base_ms > 0


class NoOnnx(nn.Module):
    """An op neither ONNX exporter has a conversion for (torch 2.14): runs in PyTorch, not in ONNX."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.special.bessel_j0(x)


def test_a_model_a_runtime_cannot_run_is_a_row_with_the_reason(lenet) -> None:
    _model, x = lenet
    rows = bench_model(NoOnnx(), x, ["torch", "onnxruntime"], threads=[1], batches=[1], runs=3, warmup=1)
    ok, failed = rows
    assert ok.runtime == "torch" and ok.latency_ms is not None and ok.error is None
    assert failed.latency_ms is None and "ONNX export failed" in failed.error and "bessel" in failed.error
    with pytest.raises(RuntimeUnsupported):
        get_runtime("onnxruntime").prepare(NoOnnx(), (x,))


def test_bench_rows_cover_every_runtime_thread_and_batch(lenet) -> None:
    model, x = lenet
    rows = bench_model(model, x, FAST, threads=[1, 2], batches=[1, 3], runs=4, warmup=1, rounds=2)
    assert {(r.runtime, r.threads, r.batch) for r in rows} == {
        (r, t, b) for r in FAST for t in (1, 2) for b in (1, 3)
    }
    for row in rows:
        assert row.error is None and row.latency_ms > 0
        assert row.throughput == pytest.approx(row.batch / row.latency_ms * 1e3)
        assert row.peak_memory_bytes is None or row.peak_memory_bytes > 0  # None: no gain to see


@pytest.mark.parametrize("name", ["openvino"])
def test_latency_model_and_measure_latency_take_any_registry_runtime(name, lenet, tmp_path) -> None:
    model, x = lenet
    table = LatencyModel(model, x[:1], backend=name, runs=3, warmup=1)
    assert table.runtime == name and table.base_ms > 0
    small = ns.prune(model, x[:1], ratio=0.5)
    assert table.predict_model(small) > 0  # new unit shapes are timed on the same runtime
    again = LatencyModel.load(table.save(tmp_path / "table.json"), model, x[:1])
    assert again.runtime == name and again.table == table.table and again.measured == 0
    assert measure_latency(model, x[:1], runs=3, warmup=1, runtime=name) > 0


def test_openvino_missing_says_how_to_install(monkeypatch, lenet) -> None:
    import builtins

    real = builtins.__import__

    def no_openvino(name, *args, **kwargs):
        if name == "openvino" or name.startswith("openvino."):
            raise ImportError("no openvino")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_openvino)
    why = get_runtime("openvino").available()
    assert why is not None and "pip install openvino" in why
    model, x = lenet
    (row,) = bench_model(model, x, ["openvino"], runs=2, warmup=1)
    assert row.latency_ms is None and "pip install openvino" in row.error


def test_measure_runtime_names_are_the_registry() -> None:
    """Recipes (deploy.runtime), searches (latency_runtime) and the CLI validate against
    measure.latency.RUNTIMES: it must name every registered runtime, no more."""
    from netsculpt.measure.latency import RUNTIMES
    from netsculpt.runtimes import runtime_names

    assert sorted(RUNTIMES) == sorted(runtime_names())


class Scaled(nn.Module):
    """A forward with an option dict beside the image: the TorchScript export makes the number an input."""

    def __init__(self) -> None:
        super().__init__()
        self.c = nn.Conv2d(1, 4, 3, padding=1)

    def forward(self, x: torch.Tensor, opts: dict[str, float]) -> torch.Tensor:
        return (self.c(x) * opts["scale"]).mean((2, 3))


@pytest.mark.parametrize("name", ["onnxruntime", "openvino"])
def test_onnx_runtimes_feed_number_leaves_alike(name) -> None:
    # OpenVINO counted tensor leaves only and refused "takes 2 inputs, got 1" where ONNX Runtime ran
    model = Scaled().eval()
    x = torch.randn(1, 1, 8, 8)
    prepared = get_runtime(name).prepare(model, (x, {"scale": 2.0}), threads=1)
    try:
        (y,) = prepared.run((x, {"scale": 5.0}))
    finally:
        prepared.close()
    with torch.no_grad():
        assert torch.allclose(y, model(x, {"scale": 5.0}), atol=1e-4)


def test_openvino_refuses_onnx_runtimes_int8_artefact(lenet, tmp_path) -> None:
    from netsculpt.weights.quantize import quantize_int8

    model, x = lenet
    q = quantize_int8(model, x, [x], tmp_path)
    with pytest.raises(RuntimeUnsupported, match="int8 onnxruntime artefact: it runs on onnxruntime only"):
        get_runtime("openvino").prepare(q, (x,))
