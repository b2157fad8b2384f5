"""Inputs and outputs of any structure: lists and dicts of tensors, non-tensor leaves passed through."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import netsculpt as ns
from netsculpt.errors import ConfigError
from netsculpt.measure import count_macs, export_onnx, measure, peak_activation_bytes, run_onnx
from netsculpt.measure._inputs import at_batch


class ListIn(nn.Module):
    """Takes a list of images and an options dict (with an int and a string), returns nested outputs."""

    def __init__(self, leaf_outputs: bool = True) -> None:
        super().__init__()
        self.leaf_outputs = leaf_outputs  # ONNX outputs are tensors only: the exporters refuse others
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Conv2d(4, 2, 1)

    def forward(self, images: list[torch.Tensor], options: dict) -> tuple:
        feats = self.conv(torch.stack(images))
        scaled = feats * options["scale"]
        if not self.leaf_outputs:
            return {"out": self.head(scaled)}, [feats.sum()]
        return {"out": self.head(scaled), "count": len(images)}, options["tag"]


def _example() -> tuple:
    return ([torch.randn(3, 8, 8), torch.randn(3, 8, 8)], {"scale": 2, "tag": "x", "none": None})


def test_macs_memory_and_latency_on_structured_inputs() -> None:
    model, x = ListIn(), _example()
    macs, layers = count_macs(model, x)
    # conv: 2 images x 8x8 x 4 out x 3 in x 9; head: 2 x 8x8 x 2 x 4
    assert macs == 2 * 64 * 4 * 27 + 2 * 64 * 2 * 4
    assert {layer.name for layer in layers} >= {"conv", "head"}
    assert peak_activation_bytes(model, x) > 0
    metrics = measure(model, x, runs=2, warmup=0)
    assert metrics.macs == macs and set(metrics.latency["torch"]) == {1} and metrics.latency_ms > 0


def test_structured_inputs_are_timed_as_given_only() -> None:
    x = _example()
    assert at_batch(x, 1) is x
    with pytest.raises(ConfigError, match="timed as given"):
        at_batch(x, 4)
    with pytest.raises(ConfigError, match="timed as given"):
        measure(ListIn(), x, batch_sizes=(1, 4), runs=1, warmup=0)


def test_onnx_export_flattens_the_tensor_leaves(tmp_path: Path) -> None:
    model = ListIn(leaf_outputs=False).eval()
    x = _example()
    path = export_onnx(model, x, tmp_path / "list.onnx")
    got = run_onnx(path, x)
    with torch.no_grad():
        ref = model(*x)[0]
    torch.testing.assert_close(torch.from_numpy(got[0]), ref["out"], rtol=1e-4, atol=1e-5)


def test_a_model_that_cannot_export_gets_a_reason_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    from netsculpt.errors import TraceError
    from netsculpt.measure import format_metrics_table

    metrics_module = importlib.import_module("netsculpt.measure.metrics")  # ns.measure is the function

    def refuse(*args: object, **kwargs: object) -> None:
        raise TraceError("cannot export ListIn to ONNX: aten::histc has no ONNX operator")

    monkeypatch.setattr(metrics_module, "export_onnx", refuse)
    metrics = measure(ListIn(), _example(), onnx=True, runs=1, warmup=0)
    assert "onnxruntime" not in metrics.latency
    assert "histc" in metrics.unavailable["onnxruntime"]
    assert metrics.to_dict()["unavailable"] == metrics.unavailable
    assert ns.Metrics.from_dict(metrics.to_dict()).unavailable == metrics.unavailable
    rows = [str(c) for c in format_metrics_table(metrics).columns[1]._cells]
    assert any("not measured" in r for r in rows)


def test_the_exporters_reasons_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """export_onnx's message puts each exporter's reason on its own line after the header; only the
    header ("cannot export ListIn to ONNX with inputs [...]:") was kept."""
    import importlib

    onnx_module = importlib.import_module("netsculpt.measure.onnx_runtime")

    def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError("Exporting the operator 'aten::histc' to ONNX opset is not supported")

    monkeypatch.setattr(onnx_module, "_export", fail)
    metrics = measure(ListIn(), _example(), onnx=True, runs=1, warmup=0)
    reason = metrics.unavailable["onnxruntime"]
    assert "TorchScript exporter: RuntimeError: Exporting the operator 'aten::histc'" in reason
    assert "dynamo exporter" in reason and "\n" not in reason


def test_trace_and_prune_with_structured_inputs() -> None:
    model, x = ListIn(), _example()
    graph = ns.trace(model, x)
    assert graph.group("conv").n_prunable == 4  # the conv's channels reach the head through the dict
    small = ns.prune(model, x, ratio=0.5)
    out, tag = small(*x)
    assert tag == "x" and out["out"].shape == (2, 2, 8, 8) and small.conv.out_channels == 2


class OneList(nn.Module):
    """Called like a torchvision detector: ``model([img, ...])``, one list argument."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.head = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 2, 1)

    def forward(self, images: list[torch.Tensor]) -> torch.Tensor:
        return self.head(self.conv(torch.stack(images)).relu())


_LIST_HINT = r"pass \(\[img, \.\.\.\],\) : a tuple whose one element is the list of images"


def test_a_bare_list_is_refused_up_front_with_the_tuple_hint() -> None:
    # before: [img] was unpacked into forward(img), which failed inside the model on the image's shape
    model, img = OneList().eval(), torch.randn(3, 8, 8)
    for run in (
        lambda: measure(model, [img], latency=False),
        lambda: count_macs(model, [img]),
        lambda: peak_activation_bytes(model, [img]),
    ):
        with pytest.raises(ConfigError, match=_LIST_HINT) as info:
            run()
        assert info.value.__cause__ is None and info.value.__context__ is None
    for run in (lambda: ns.trace(model, [img]), lambda: ns.prune(model, [img], ratio=0.5)):
        with pytest.raises(ns.errors.TraceError, match=_LIST_HINT) as info:
            run()
        assert info.value.__suppress_context__ and info.value.__cause__ is None
    assert measure(model, ([img],), latency=False).macs > 0  # the form the hint names works
