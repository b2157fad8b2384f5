"""Float predictors in an int8 detector head (weights/int8_predictors.py): the towers int8, the last convs
(logits, boxes, centerness) plain float convs inside the same graph."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from netsculpt.errors import ConfigError
from tests.weights.test_int8_detector import _detector, _images, _loader


@pytest.fixture(scope="module")
def all_int8(tmp_path_factory) -> Path:
    """The detector and calibration of test_int8_detector.py's ``quantized`` fixture, with the head's
    prediction convs int8 too."""
    from netsculpt.weights.int8_detector import quantize_detector

    out = tmp_path_factory.mktemp("int8det-allint8")
    quantize_detector(_detector(), _loader(), out, calibration_batches=2, float_predictors=False)
    return out


@pytest.fixture(scope="module")
def default_int8(tmp_path_factory) -> Path:
    """The same detector quantized with the defaults: backbone+head, float predictors (ONNX Runtime)."""
    from netsculpt.weights.int8_detector import quantize_detector

    out = tmp_path_factory.mktemp("int8det-default")
    quantize_detector(_detector(), _loader(), out, calibration_batches=2)
    return out


PREDICTOR_CONVS = {
    "cls_logits": "classification_head.cls_logits",
    "bbox_reg": "regression_head.bbox_reg",
    "bbox_ctrness": "regression_head.bbox_ctrness",
}


def _predictor_stage_errors(model: nn.Module, folder: Path) -> dict[str, float]:
    """Each prediction conv's output in the int8 graph against the float conv run on that graph's own
    tower output (before any QuantizeLinear), on the first pyramid level: the error the predictor itself
    adds, apart from what the backbone and towers add before it."""
    import onnx
    import onnxruntime as ort

    proto = onnx.load(str(folder / "model.int8.onnx"))
    made_by = {out: node for node in proto.graph.node for out in node.output}
    scopes = {node.name: (["", *node.name.split("/")])[-2] for node in proto.graph.node}
    convs = {
        scopes[n.name]: n
        for n in proto.graph.node
        if n.op_type == "Conv" and scopes[n.name] in PREDICTOR_CONVS
    }
    taps = {}
    for key, node in convs.items():
        tower = node.input[0]
        while made_by[tower].op_type in ("QuantizeLinear", "DequantizeLinear"):
            tower = made_by[tower].input[0]
        taps[key] = (tower, node.output[0])
    names = sorted({name for pair in taps.values() for name in pair})
    proto.graph.output.extend(
        onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in names
    )
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    x = model.transform(_images())[0].tensors
    values = dict(zip(names, session.run(names, {"input0": x.numpy()})))
    errors = {}
    for key, (tower, out) in taps.items():
        with torch.no_grad():
            ref = model.head.get_submodule(PREDICTOR_CONVS[key])(torch.from_numpy(values[tower]))
        errors[key] = float((torch.from_numpy(values[out]) - ref).norm() / ref.norm())
    return errors


def test_float_predictors_keep_the_heads_last_convs_float_inside_the_int8_graph(
    default_int8, all_int8
) -> None:
    import json

    import onnx

    from netsculpt.weights.int8_detector import BackboneHead, load_int8_detector
    from netsculpt.weights.quantize import node_module

    model, mixed = _detector(), default_int8  # the default on ONNX Runtime: float predictors
    assert json.loads((mixed / "int8_detector.json").read_text())["float_predictors"] is True
    assert json.loads((all_int8 / "int8_detector.json").read_text()).get("float_predictors", False) is False
    graph = onnx.load(str(mixed / "model.int8.onnx")).graph
    floats = {i.name for i in graph.initializer if i.data_type == onnx.TensorProto.FLOAT}
    made_by = {out: node.op_type for node in graph.node for out in node.output}
    modules = set(dict(BackboneHead(model.backbone, model.head).named_modules()))
    kinds: dict[str, set[tuple[str, str, str]]] = {}
    for node in graph.node:
        name = node_module(node.name, modules)
        if node.op_type in ("Conv", "QLinearConv") and name and name.startswith("head."):
            weight = "float initializer" if node.input[1] in floats else made_by.get(node.input[1], "?")
            kinds.setdefault(name.rpartition(".")[2], set()).add(
                (node.op_type, weight, made_by[node.input[0]])
            )
    for predictor in PREDICTOR_CONVS:  # every pyramid level's call: a plain float conv on the float tower
        assert kinds[predictor] == {("Conv", "float initializer", "Relu")}, kinds[predictor]
    assert kinds["9"] == {("Conv", "DequantizeLinear", "DequantizeLinear")}, kinds["9"]  # towers stay int8
    # the predictor stage adds no error of its own (float conv: 1e-5 is float32 summation order), where the
    # all-int8 graph's predictors add their input and weight rounding: ~1e-2 on the boxes, ~3e-4 on the
    # logits, whose untrained output is mostly FCOS's prior bias (-4.6); 1e-4 is ten times the float bound
    own, rounded = _predictor_stage_errors(model, mixed), _predictor_stage_errors(model, all_int8)
    assert all(e < 1e-5 for e in own.values()) and all(e > 1e-4 for e in rounded.values()), (own, rounded)
    again = load_int8_detector(mixed, model)  # the graph carries the choice: it reloads as it is
    assert again.backbone.part == "backbone+head" and type(again.head).__name__ == "Int8Head"


def test_float_predictors_are_refused_off_the_int8_head_and_on_pt2e(tmp_path) -> None:
    from netsculpt.weights.int8_detector import quantize_detector

    model = _detector()
    with pytest.raises(ConfigError, match=r"part='backbone' leaves the whole head float already"):
        quantize_detector(model, _loader(4), tmp_path, part="backbone", float_predictors=True)
    with pytest.raises(ConfigError, match=r"float_predictors needs .*onnxruntime, openvino.*not 'torch'"):
        quantize_detector(model, _loader(4), tmp_path, runtime="torch", float_predictors=True)
    assert not any(tmp_path.iterdir())  # refused before any pass or file


@pytest.mark.runtimes  # loads OpenVINO
def test_float_predictors_map_to_every_level_of_the_openvino_graph(all_int8) -> None:
    import openvino as ov

    from netsculpt.weights.int8_detector import BackboneHead
    from netsculpt.weights.int8_predictors import float_predictors_default, predictors_keep
    from netsculpt.weights.int8_runtimes import openvino_ignored

    model = _detector()
    graph, path = BackboneHead(model.backbone, model.head), all_int8 / "model.fp32.onnx"  # the same export
    keep = predictors_keep(model, "backbone+head", "openvino")
    ignored = openvino_ignored(graph, path, ov.Core().read_model(str(path)), keep)
    # FCOS: 3 prediction convs, each run on 5 pyramid levels, each level one OpenVINO Convolution
    assert len(ignored) == 15 and all(n.endswith("/Conv/WithoutBiases") for n in ignored), ignored
    assert {n.split("/")[3].rstrip("_01234") for n in ignored} == set(PREDICTOR_CONVS), ignored
    # the default: float on both (measured: less mAP lost at the same speed), never off the head
    assert float_predictors_default(model, "backbone+head", "openvino", None) is True
    assert float_predictors_default(model, "backbone+head", "onnxruntime", None) is True
    assert float_predictors_default(model, "backbone+head", "onnxruntime", False) is False
    assert float_predictors_default(model, "backbone", "openvino", None) is False
