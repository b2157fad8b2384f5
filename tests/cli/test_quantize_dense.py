"""``netsculpt quantize --task detection|segmentation``: tiny runs (64 px, 8 training canvases, untrained
models; ~15 s in all) writing what the API writes, and the refusals, given before any work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from netsculpt.cli import main

SMALL = ["--data-option", "size=64", "--data-option", "train_canvases=8", "--data-option",
         "test_canvases=4", "--batch-size", "4", "--calibration-batches", "2"]  # fmt: skip
DETECT = ["--task", "detection", "--data", "digits_detect", *SMALL]
SEG = ["--task", "segmentation", "--data", "digits_seg", *SMALL]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["--quiet", *argv])
    out, err = capsys.readouterr()
    return code, " ".join(out.split()), err  # rich wraps the line at the terminal's width


def test_a_detector_gets_the_int8_backbone_the_api_writes_and_its_map(capsys, tmp_path: Path) -> None:
    """quantize took classification data only: a detector was refused as 'not a classifier'."""
    from netsculpt.runtimes.artefacts import load_artefact
    from netsculpt.weights.int8_detector import is_int8_detector

    out = tmp_path / "det8"
    code, text, err = run(capsys, "quantize", "fcos_slim", "--model-option", "image_size=64", *DETECT,
                          "--runtime", "onnxruntime", "--part", "backbone", "--out", str(out))  # fmt: skip
    assert code == 0, err
    assert (
        "int8 backbone (onnxruntime, 2 calibration batches of training canvases): test mAP@[.5:.95] " in text
    )
    record = json.loads((out / "int8_detector.json").read_text())
    assert record["runtime"] == "onnxruntime" and record["input_size"] == [1, 64, 64]
    assert record["part"] == "backbone"  # --part; the API's default for FCOS is backbone+head
    assert (out / "model.int8.onnx").is_file() and (out / "model" / "model.safetensors").is_file()
    int8 = load_artefact(out)  # rebuilt around the saved float detector, as a resumed recipe loads it
    assert is_int8_detector(int8) and int8.backbone.runtime == "onnxruntime"


def test_a_segmenter_is_quantized_whole_and_scored_by_miou(capsys, tmp_path: Path) -> None:
    from netsculpt.runtimes.artefacts import load_artefact

    out = tmp_path / "seg8"
    code, text, err = run(capsys, "quantize", "lraspp_gray", *SEG, "--method", "percentile",
                          "--out", str(out))  # fmt: skip
    assert code == 0, err
    assert "int8 (onnxruntime, 2 calibration batches of training canvases): test mIoU " in text
    assert load_artefact(out).deployed_runtime == "onnxruntime"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["fcos_slim", "--task", "detection", "--data", "mnist5k"],
         "task 'detection' reads data 'digits_detect', 'coco' or 'yolo', not 'mnist5k'"),
        (["lenet5", "--data", "digits_seg"], "'digits_seg' is segmentation data: pass '--task segmentation'"),
        (["lenet5", "--data-option", "size=64"], "--data-option is for --task detection / segmentation data"),
        (["fcos_slim", *DETECT, "--data-option", "sise=64"],
         r"--data-option ['sise'] unknown for 'digits_detect'"),
        (["fcos_slim", *DETECT, "--mixed", "--budget-ms", "1"],
         "--mixed scores layers by classification accuracy; it does not run --task detection yet"),
        (["lraspp_gray", *SEG, "--runtime", "openvino", "--method", "entropy"],
         "--method is ONNX Runtime's calibration; --runtime openvino takes none"),
        (["lenet5", "--runtime", "torch"], "quantizes classifiers on ONNX Runtime only; for --runtime torch"),
        (["lraspp_gray", *DETECT],
         "cannot quantize GraySegmenter: int8 for detectors quantizes the backbone"),
        (["fcos_slim", "--task", "detections", "--data", "digits_detect"], "unknown task 'detections'"),
        (["lenet5", "--runtime", "auto", "--method", "entropy"],
         "--method is ONNX Runtime's alone, and --runtime auto compares every runtime"),
        (["lenet5", "--part", "backbone"], "--part chooses a detector's int8 part: pass --task detection"),
        (["lraspp_gray", *SEG, "--part", "backbone"],
         "--part chooses a detector's int8 part; --task segmentation goes int8 whole"),
        (["lenet5", "--float-predictors"], "--float-predictors chooses a detector's int8 part: pass --task"),
        (["fcos_slim", *DETECT, "--runtime", "auto", "--no-float-predictors"],
         "--float-predictors chooses for one runtime; --runtime auto compares each runtime at its default"),
        (["fcos_slim", *DETECT, "--part", "backbone", "--float-predictors"],
         "part='backbone' leaves the whole head float already"),
        (["fcos_slim", *DETECT, "--runtime", "auto", "--tolerance-pp", "-1"],
         "--tolerance-pp is a drop in percentage points, >= 0; got -1.0"),
    ],
)  # fmt: skip
def test_what_quantize_cannot_run_is_refused_before_any_work(capsys, tmp_path: Path, argv, message) -> None:
    out = tmp_path / "x"
    code, _, err = run(capsys, "quantize", *argv, "--out", str(out))
    assert code != 0
    assert message in " ".join(err.split())
    assert not out.exists()


def test_a_detector_without_task_is_pointed_to_it(capsys, tmp_path: Path) -> None:
    code, _, err = run(capsys, "quantize", "fcos_slim", "--input-shape", "1,1,28,28", "--out", str(tmp_path))
    assert code != 0
    assert "For detectors and segmenters pass --task detection / segmentation" in " ".join(err.split())


@pytest.mark.runtimes  # loads OpenVINO / NNCF
def test_a_segmenter_goes_int8_on_openvino(capsys, tmp_path: Path) -> None:
    from netsculpt.runtimes.artefacts import load_artefact

    out = tmp_path / "ov"
    code, text, err = run(capsys, "quantize", "lraspp_gray", *SEG, "--runtime", "openvino", "--out", str(out))
    assert code == 0, err
    assert "int8 (openvino, 2 calibration batches of training canvases): test mIoU " in text
    assert load_artefact(out).deployed_runtime == "openvino"
