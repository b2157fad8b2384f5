"""Recipes with ``task: detection`` / ``segmentation``: checked before any work, run end to end small."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from torch import nn

from netsculpt.errors import ConfigError
from netsculpt.models import MODELS, register_model
from netsculpt.pipeline import load_recipe, parse_recipe, run_recipe


def tiny_segmenter(num_classes: int, in_channels: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(in_channels, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, num_classes, 1), nn.Upsample(scale_factor=2.0),
    )  # fmt: skip


@pytest.fixture(autouse=True)
def _tiny_segmenter_registered(monkeypatch) -> None:
    """Registered per test, not at import: an import-time entry would leak into every test that
    parametrises over the registered models."""
    monkeypatch.setattr(MODELS, "_entries", dict(MODELS._entries))  # restored after the test
    register_model("test_tiny_segmenter", input_shape=(1, 64, 64), num_classes=11, in_channels=1)(
        tiny_segmenter
    )


EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "detector_digits.yaml"
SMALL = [
    "data.options.size=64", "model.options.image_size=64", "data.options.train_canvases=24",
    "data.options.test_canvases=8", "data.batch_size=8", "baseline.train.epochs=1",
    "baseline.train.warmup_epochs=0", "stages.0.prune.calib_batches=1", "stages.1.distill.epochs=1",
    "stages.1.distill.warmup_epochs=0", "stages.1.distill.early_stop.holdout=8", "outputs.latency_runs=2",
]  # fmt: skip

SEG = """
version: 1
name: seg
task: segmentation
model: {name: test_tiny_segmenter}
data: {name: digits_seg, batch_size: 8, options: {size: 64, train_canvases: 24, test_canvases: 8}}
baseline: {train: {epochs: 1, optimizer: adamw, lr: 0.002, warmup_epochs: 0}}
stages:
  - search: {method: greedy, target: {macs: 0.7}, criterion: l1, val_size: 8,
             options: {eval_batches: 1, full_batches: 1, adapt_bn_batches: 1, step: 0.3}}
  - finetune: {epochs: 1, optimizer: adamw, lr: 0.001, warmup_epochs: 0}
outputs: {latency_runs: 2, report: false}
"""


def _recipe(text: str, *overrides: str):
    return parse_recipe(text, overrides=list(overrides))


def test_a_label_per_image_criterion_on_a_dense_task_is_refused_when_the_recipe_is_read() -> None:
    text = EXAMPLE.read_text()
    with pytest.raises(
        ConfigError, match=r"stages.0: criterion 'hrel' needs one class label per image.*boxes"
    ):
        _recipe(text, "stages.0.prune.criterion=hrel")
    with pytest.raises(ConfigError, match=r"'hrel' needs one class label per image.*pixel maps"):
        _recipe(SEG, "stages.0.search.criterion=hrel")


def test_data_and_stages_must_suit_the_task() -> None:
    text = EXAMPLE.read_text()
    with pytest.raises(ConfigError, match="reads data 'digits_detect', 'coco' or 'yolo', not 'mnist5k'"):
        _recipe(text, "data.name=mnist5k", "data.options={}")
    with pytest.raises(ConfigError, match="add 'task: detection'"):
        _recipe(text, "task=classification")
    with pytest.raises(ConfigError, match="unknown task 'detections'"):
        _recipe(text, "task=detections")
    with pytest.raises(ConfigError, match="'cluster' is not supported for task 'detection'"):
        _recipe(text.replace("outputs:", "  - cluster: {}\noutputs:"))
    with pytest.raises(
        ConfigError, match=r"'cluster' is not supported .* segmentation recipes run .*quantize"
    ):
        _recipe(SEG.replace("outputs:", "  - cluster: {}\noutputs:"))
    with pytest.raises(ConfigError, match="augment shifts images, not their boxes"):
        _recipe(text, "stages.1.distill.augment=true")
    with pytest.raises(ConfigError, match="mixup mixes two images but not their detection targets"):
        _recipe(text, "stages.1.distill.mixup=0.2")


@pytest.mark.parametrize("value", ["true", "{images: 2}"])
def test_explain_on_a_dense_recipe_is_refused_when_the_recipe_is_read(value: str) -> None:
    """It ran every stage, then failed with "unknown dataset 'digits_detect'" and wrote no report."""
    with pytest.raises(ConfigError, match=r"outputs\.explain .*classification runs only \(task: detection\)"):
        _recipe(EXAMPLE.read_text(), f"outputs.explain={value}")
    assert not _recipe(EXAMPLE.read_text(), "outputs.explain=false").outputs.explain.enabled


def test_a_soft_distill_stage_on_a_detector_without_a_head_is_refused_before_the_baseline_trains(
    tmp_path,
) -> None:
    """Faster R-CNN-like models have no ``head`` to match: the run stops before any stage, not after the
    baseline and the pruning have run."""
    register_model("test_headless_detector", input_shape=(1, 64, 64), num_classes=11, in_channels=1)(
        tiny_segmenter
    )
    recipe, text = load_recipe(EXAMPLE, [*SMALL, "model.name=test_headless_detector", "model.options={}"])
    with pytest.raises(ConfigError, match=r"stages.1 \(distill, alpha 0.5\):.*no module called.*alpha=0"):
        run_recipe(recipe, text, tmp_path)
    assert not list(tmp_path.glob("00_baseline/checkpoints/*"))  # nothing was trained


@pytest.mark.slow
def test_detector_digits_runs_small_and_reports_map(tmp_path) -> None:
    fpn_hints = "stages.1.distill.hints=[backbone.fpn.layer_blocks.0, backbone.fpn.layer_blocks.1]"
    recipe, text = load_recipe(EXAMPLE, [*SMALL, fpn_hints])  # FPN features matched beside the head
    results = run_recipe(recipe, text, tmp_path)
    assert results["task"]["label"] == "mAP@[.5:.95]" and results["task"]["metric"] == "map"
    assert results["after"]["macs"] <= 0.55 * results["before"]["macs"]
    for stage in results["stages"]:
        metrics = stage["metrics"]
        assert set(metrics["task_metrics"]) == {"map", "map_50"}
        assert metrics["accuracy"] == metrics["task_metrics"]["map"] and metrics["loss"] is None
    assert results["stages"][2]["info"]["kd"]["hints"] == [
        "backbone.fpn.layer_blocks.0",
        "backbone.fpn.layer_blocks.1",
    ]
    stop = results["stages"][2]["info"]["early_stopping"]
    assert stop["holdout"] == 8  # held out of the 24 training canvases, never the test canvases
    report = (tmp_path / "report.html").read_text()
    assert "mAP@[.5:.95] against cost" in report and "mAP@.5<" in report
    assert json.loads((tmp_path / "results.json").read_text())["task"]["name"] == "detection"


@pytest.mark.slow
def test_segmentation_recipe_searches_on_held_out_training_canvases(tmp_path) -> None:
    results = run_recipe(_recipe(SEG), SEG, tmp_path, trust_builder=f"{__name__}:tiny_segmenter")
    assert results["task"]["label"] == "mIoU"
    search = results["stages"][1]
    assert search["info"]["plan"]["meta"]["estimate"]["samples"] == 8  # the 8 held-out training canvases
    assert results["after"]["macs"] < results["before"]["macs"]
    assert set(results["after"]["task_metrics"]) == {"miou", "pixel_acc"}


@pytest.mark.slow
@pytest.mark.runtimes  # loads OpenVINO and torch.compile
def test_segmentation_recipe_keeps_the_fastest_int8_within_its_miou_tolerance(tmp_path) -> None:
    """quantize was refused on dense tasks: runtime: auto scored candidates by classification accuracy."""
    # if_slower: int8: on a segmenter this small the float model may be the fastest, and this test is about
    # the int8 candidates' mIoU scoring (keeping the float model then: tests/pipeline/test_quantize_stage.py)
    stage = "  - quantize: {calib_batches: 1, runtime: auto, tolerance_pp: 100, select_batches: 1, "
    stage += "if_slower: int8}\n"
    text = SEG[: SEG.index("stages:")] + "stages:\n" + stage + SEG[SEG.index("outputs:") :]
    results = run_recipe(_recipe(text), text, tmp_path, trust_builder=f"{__name__}:tiny_segmenter")
    info = results["stages"][1]["info"]
    assert info["metric"] == "miou" and {r["metric"] for r in info["candidates"]} == {"miou"}
    rows = [r for r in info["candidates"] if "latency_ms" in r]
    assert {r["runtime"] for r in rows} == {"onnxruntime", "openvino", "torch"}, info["candidates"]
    assert (
        info["runtime"] == min(rows, key=lambda r: r["latency_ms"])["runtime"]
    )  # tolerance 100: all qualify
    assert 0 <= info["float_heldout_accuracy"] <= 1 and info["decision"]["keep"] == "int8"
    assert set(results["after"]["latency"]) == {
        f"{'compile' if info['runtime'] == 'torch' else info['runtime']}-int8"
    }
    assert results["task"]["label"] == "mIoU" and 0 <= results["after"]["accuracy"] <= 1


DET_INT8 = """
version: 1
name: det8
task: detection
model: {name: fcos_slim, options: {image_size: 64}}
data: {name: digits_detect, batch_size: 4, options: {size: 64, train_canvases: 12, test_canvases: 4}}
baseline: {train: {epochs: 1, warmup_epochs: 0}}
stages:
  - quantize: {runtime: onnxruntime, calib_batches: 2}
outputs: {latency_runs: 2, report: false}
"""


def test_a_detection_recipe_quantizes_its_detectors_backbone_and_resumes_it(tmp_path) -> None:
    """quantize was refused for task: detection (a detector takes a list of images)."""
    results = run_recipe(_recipe(DET_INT8), DET_INT8, tmp_path)
    stage = results["stages"][1]
    # FCOS has a model.head: by default it is int8 with the backbone, and the stage records so
    assert stage["info"] == {"runtime": "onnxruntime", "int8": True, "part": "backbone+head"}
    assert (
        json.loads((tmp_path / "01_quantize" / "int8_detector.json").read_text())["part"] == "backbone+head"
    )
    assert set(stage["metrics"]["task_metrics"]) == {"map", "map_50"}
    assert 0 <= stage["metrics"]["accuracy"] <= 1 and stage["metrics"]["size_bytes"] > 0
    folder = tmp_path / "01_quantize"
    assert {"int8_detector.json", "model.int8.onnx", "model.int8.outputs.json"} <= {
        p.name for p in folder.iterdir()
    }
    assert (folder / "model" / "model.safetensors").is_file()  # the float detector it is rebuilt around
    again = run_recipe(_recipe(DET_INT8), DET_INT8, tmp_path)  # resumed: loaded from the stage folder
    assert again["stages"][1]["metrics"]["task_metrics"] == stage["metrics"]["task_metrics"]


@pytest.mark.slow
@pytest.mark.runtimes  # loads OpenVINO and torch.compile
def test_a_detection_recipe_keeps_the_fastest_int8_backbone_within_its_map_tolerance(tmp_path) -> None:
    # part: backbone keeps PT2E's compile short (backbone+head is tested on ONNX Runtime by the test above)
    stage = "{runtime: auto, part: backbone, calib_batches: 1, select_batches: 1, tolerance_pp: 100, "
    stage += "if_slower: int8}"
    text = DET_INT8.replace("{runtime: onnxruntime, calib_batches: 2}", stage)
    info = run_recipe(_recipe(text), text, tmp_path)["stages"][1]["info"]
    assert info["metric"] == "map" and {r["metric"] for r in info["candidates"]} == {"map"}
    rows = [r for r in info["candidates"] if "latency_ms" in r]
    assert {r["runtime"] for r in rows} == {"onnxruntime", "openvino", "torch"}, info["candidates"]
    assert info["runtime"] == min(rows, key=lambda r: r["latency_ms"])["runtime"]  # tolerance 100: all
    assert {r["float_runtime"] for r in rows} == {"torch"}  # the whole detector, float parts eager
    assert (tmp_path / "01_quantize" / "int8_detector.json").is_file()


def test_a_quantize_stage_on_a_detector_int8_cannot_take_is_refused_before_the_baseline_trains(
    tmp_path,
) -> None:
    register_model("test_plain_detector", input_shape=(1, 64, 64), num_classes=11, in_channels=1)(
        tiny_segmenter
    )
    text = DET_INT8.replace("{name: fcos_slim, options: {image_size: 64}}", "{name: test_plain_detector}")
    with pytest.raises(ConfigError, match=r"stages.0 \(quantize\): cannot quantize Sequential: .*FCOS, SSD"):
        run_recipe(_recipe(text), text, tmp_path, trust_builder=f"{__name__}:tiny_segmenter")
    assert not list(tmp_path.glob("00_baseline/checkpoints/*"))  # nothing was trained


def _coco_split(root: Path, split: str, n: int) -> None:
    """``n`` 64 px RGB images, each with one or two bright rectangles, and their COCO annotations."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(len(split))
    (root / split).mkdir(parents=True)
    images, annotations = [], []
    for i in range(n):
        pixels = np.zeros((64, 64, 3), np.uint8)
        for _ in range(int(rng.integers(1, 3))):
            x, y, w, h = (int(v) for v in (*rng.integers(0, 40, 2), *rng.integers(10, 24, 2)))
            category = int(rng.integers(1, 3))
            pixels[y : y + h, x : x + w, category - 1] = 255
            annotations.append({"id": len(annotations) + 1, "image_id": i, "category_id": category,
                                "bbox": [x, y, w, h]})  # fmt: skip
        Image.fromarray(pixels).save(root / split / f"{i}.png")
        images.append({"id": i, "file_name": f"{i}.png"})
    data = {"images": images, "annotations": annotations, "categories": [{"id": 1}, {"id": 2}]}
    (root / f"{split}.json").write_text(json.dumps(data))


COCO = """
version: 1
name: coco
task: detection
model: {name: fcos_slim, options: {image_size: 64}}
data:
  name: coco
  root: ROOT
  batch_size: 4
  options: {train_annotations: train.json, train_images: train, test_annotations: test.json,
            test_images: test, channels: 3, size: 64}
baseline: {train: {epochs: 1, optimizer: adamw, lr: 0.002}}
stages:
  - prune: {criterion: taylor, ratio: 0.5, calib_batches: 1}
  - finetune: {epochs: 1, optimizer: adamw, lr: 0.001}
outputs: {latency_runs: 2, report: false}
"""


def test_coco_data_is_checked_when_the_recipe_is_read(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"needs data\.options test_annotations, test_images"):
        _recipe(COCO.replace("test_annotations: test.json,", "").replace("test_images: test, ", ""))


def test_a_test_file_without_boxes_is_refused_before_any_training(tmp_path) -> None:
    """It failed after the first training epoch ("mAP is undefined"), before that epoch's checkpoint."""
    from netsculpt.errors import DataError
    from netsculpt.pipeline.dense import dense_dataset

    for split, n in (("train", 4), ("test", 2)):
        _coco_split(tmp_path / "data", split, n)
    test = json.loads((tmp_path / "data" / "test.json").read_text())
    (tmp_path / "data" / "test.json").write_text(json.dumps({**test, "annotations": []}))
    recipe = _recipe(COCO.replace("ROOT", str(tmp_path / "data")))
    assert len(dense_dataset(recipe, "train")) == 4
    with pytest.raises(DataError, match=r"no .* ground-truth boxes, so mAP on it is undefined"):
        dense_dataset(recipe, "test")


@pytest.mark.slow
def test_a_recipe_on_your_own_coco_files(tmp_path) -> None:
    """Your own detection data: COCO annotation files + image folders the test writes."""
    for split, n in (("train", 8), ("test", 4)):
        _coco_split(tmp_path / "data", split, n)
    text = COCO.replace("ROOT", str(tmp_path / "data"))
    results = run_recipe(_recipe(text), text, tmp_path / "run")
    assert results["task"]["label"] == "mAP@[.5:.95]" and results["after"]["macs"] < results["before"]["macs"]
    assert set(results["after"]["task_metrics"]) == {"map", "map_50"}


def test_canvas_digits_and_scale_are_checked_when_the_recipe_is_read() -> None:
    """A bare number failed inside the canvas builder ('int' object is not iterable); a canvas smaller
    than the default scale failed with no way to set scale from the CLI."""
    from netsculpt.cli.common import parse_option

    with pytest.raises(ConfigError, match=r"data.options.scale must be \[low, high\] integers"):
        _recipe(SEG.replace("size: 64,", "size: 64, scale: 30,"))
    with pytest.raises(ConfigError, match=r"scale's high 56 is larger than the canvas size 48"):
        _recipe(SEG.replace("size: 64,", "size: 48,"))
    assert _recipe(SEG.replace("size: 64,", "size: 48, scale: [6, 20],")).data.options["scale"] == [6, 20]
    assert parse_option("scale=[6,20]") == ("scale", [6, 20])  # the CLI's --data-option takes the pair
