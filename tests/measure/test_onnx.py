"""ONNX export and ONNX Runtime: same outputs as PyTorch, any batch size, clear export errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from netsculpt.errors import ConfigError, TraceError
from netsculpt.measure import export_onnx, measure_latency, onnx_latency, run_onnx


def test_outputs_match_pytorch_at_several_batch_sizes(small_cnn: nn.Module, tmp_path: Path) -> None:
    small_cnn.train()
    path = export_onnx(small_cnn, torch.randn(1, 3, 16, 16), tmp_path / "cnn.onnx")
    assert small_cnn.training  # export ran in eval mode and gave the mode back
    onnx.checker.check_model(str(path))
    small_cnn.eval()
    for batch in (1, 5):  # dim 0 is exported as symbolic, so one file serves both
        x = torch.randn(batch, 3, 16, 16)
        (got,) = run_onnx(path, x)
        with torch.no_grad():
            expected = small_cnn(x).numpy()
        assert got.shape == (batch, 10)
        # float32 accumulation order differs between the runtimes; 1e-4 is far above that noise
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)


def test_multiple_inputs_and_outputs(tmp_path: Path) -> None:
    class Two(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(4, 3)

        def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return self.linear(a) + b, a.sum(1)

    model = Two()
    a, b = torch.randn(2, 4), torch.randn(2, 3)
    outputs = run_onnx(export_onnx(model, (a, b), tmp_path / "two.onnx"), (a, b))
    expected = model(a, b)
    assert len(outputs) == 2
    for got, want in zip(outputs, expected):
        np.testing.assert_allclose(got, want.detach().numpy(), atol=1e-5)


def test_onnx_latency_from_path_or_session(small_cnn: nn.Module, tmp_path: Path) -> None:
    import onnxruntime as ort

    x = torch.randn(1, 3, 16, 16)
    path = export_onnx(small_cnn, x, tmp_path / "cnn.onnx")
    assert onnx_latency(path, x, runs=3, warmup=1) > 0
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert onnx_latency(session, x, runs=3, warmup=0) > 0
    assert measure_latency(small_cnn, x, runs=3, warmup=1, runtime="onnxruntime") > 0


def test_errors_say_what_to_do(small_cnn: nn.Module, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        run_onnx(tmp_path / "missing.onnx", torch.randn(1, 3, 16, 16))
    path = export_onnx(small_cnn, torch.randn(1, 3, 16, 16), tmp_path / "cnn.onnx")
    with pytest.raises(ConfigError, match="takes 1 inputs"):
        run_onnx(path, (torch.randn(1, 3, 16, 16), torch.randn(1)))
    with pytest.raises(ConfigError, match="failed on example inputs"):
        export_onnx(small_cnn, torch.randn(1, 4, 16, 16), tmp_path / "bad.onnx")


def test_both_exporters_tried_before_trace_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The real failure (e.g. torch.histc, no ONNX operator) takes ~15 s, mostly the dynamo exporter's
    # import; faking both exporters' failures checks the same fallback and message in milliseconds.
    tried: list[bool] = []

    def failing_export(*args: object, dynamo: bool, **kwargs: object) -> None:
        tried.append(dynamo)
        raise RuntimeError(
            f"Exporting the operator 'aten::histc' is not supported ({'dynamo' if dynamo else 'ts'})"
        )

    monkeypatch.setattr(torch.onnx, "export", failing_export)
    with pytest.raises(TraceError, match="histc") as info:
        export_onnx(nn.Linear(2, 2), torch.rand(1, 2), tmp_path / "hist.onnx")
    assert tried == [False, True]  # TorchScript first, dynamo as the fallback
    message = str(info.value)
    assert "TorchScript exporter" in message and "dynamo exporter" in message and "onnx=False" in message
