"""Exporting and int8-quantizing leave nothing in the user's model (measure/onnx_runtime.py export_onnx,
weights/quantize.py check_int8_io, weights/int8_runtimes.py quantize_pt2e)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from netsculpt.errors import ConfigError
from netsculpt.measure import export_onnx
from tests.graph.archs import randomize_
from tests.graph.test_snapshot import PooledNet, assert_unchanged, module_state

pytestmark = pytest.mark.runtimes  # own pytest process in `make test` (see Makefile)


def _calibration() -> list[torch.Tensor]:
    return [torch.randn(2, 3, 8, 8) for _ in range(2)]


def _int8_calls(tmp_path: Path) -> dict[str, object]:
    from netsculpt.weights.int8_runtimes import quantize_openvino, quantize_pt2e
    from netsculpt.weights.quantize import quantize_int8

    x = torch.randn(1, 3, 8, 8)
    return {
        "export_onnx": lambda m: export_onnx(m, x, tmp_path / "m.onnx"),
        "onnxruntime": lambda m: quantize_int8(m, x, _calibration(), tmp_path / "ort"),
        "openvino": lambda m: quantize_openvino(m, x, _calibration(), tmp_path / "ov"),
        "torch": lambda m: quantize_pt2e(m, x, _calibration(), tmp_path / "pt2e"),
    }


@pytest.mark.parametrize("call", ["export_onnx", "onnxruntime", "openvino", "torch"])
def test_export_and_int8_leave_the_model_as_it_was(call: str, tmp_path: Path) -> None:
    # before: the exporters' and the output check's forwards left scales, last_shape and a counted call
    # behind in the user's model (a torchvision R-CNN's RoI pooler then no longer matched its builder)
    if call == "openvino":
        pytest.importorskip("openvino")
        pytest.importorskip("nncf")
    if call == "torch":
        pytest.importorskip("torchao")
    model = randomize_(PooledNet()).eval()
    before = module_state(model)
    _int8_calls(tmp_path)[call](model)
    assert model.pool.scales is None and not hasattr(model.pool, "last_shape"), call
    assert model.pool.calls.item() == 0, call
    assert_unchanged(model, before, call)


@pytest.mark.parametrize("call", ["export_onnx", "onnxruntime", "openvino", "torch"])
def test_unmaterialised_lazy_layers_are_refused_before_any_forward(call: str, tmp_path: Path) -> None:
    """Before: the output check's forward materialised the user's lazy layers (random weights) and was
    then blamed for "writing into its own parameters"."""
    if call == "openvino":
        pytest.importorskip("openvino")
        pytest.importorskip("nncf")
    if call == "torch":
        pytest.importorskip("torchao")
    model = torch.nn.Sequential(torch.nn.LazyConv2d(4, 3), torch.nn.Flatten(), torch.nn.LazyLinear(2))
    verb = "export" if call == "export_onnx" else "quantize"
    with pytest.raises(ConfigError, match=rf"cannot {verb} Sequential: its lazy layers have no shapes yet"):
        _int8_calls(tmp_path)[call](model)
    assert isinstance(model[0], torch.nn.LazyConv2d) and isinstance(model[2], torch.nn.LazyLinear)
    assert not any(tmp_path.iterdir())  # nothing written
