"""``--task detection|segmentation`` on train, eval, prune, distill and search: tiny runs (64 px, 16 training
canvases, 1 epoch; ~15 s in all), and the refusals a recipe gives, given before any work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from netsculpt.cli import main

SMALL = ["--data-option", "size=64", "--data-option", "train_canvases=16", "--data-option",
         "test_canvases=8", "--batch-size", "8"]  # fmt: skip
DETECT = ["--task", "detection", "--data", "digits_detect", *SMALL]
SEG = ["--task", "segmentation", "--data", "digits_seg", *SMALL]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["--quiet", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _extra(model_dir: Path) -> dict:
    return json.loads((model_dir / "netsculpt.json").read_text())["extra"]


def test_a_detector_trains_prunes_with_fisher_and_distils_on_the_canvases(capsys, tmp_path: Path) -> None:
    code, out, err = run(capsys, "train", "fcos_slim", *DETECT, "--model-option", "image_size=64",
                         "--epochs", "1", "--out", str(tmp_path / "det"))  # fmt: skip
    assert code == 0, err
    assert "test mAP@[.5:.95] " in out  # the run summary's name for it (it said "test map")
    extra = _extra(tmp_path / "det" / "model")
    assert extra["task"] == "detection" and extra["input_shape"] == [1, 1, 64, 64] and "map" in extra
    history = json.loads((tmp_path / "det" / "checkpoints" / "result.json").read_text())
    assert history["config"]["optimizer"] == "adamw"  # the dense preset: the example recipe's schedule

    det = str(tmp_path / "det" / "model")
    code, out, err = run(capsys, "prune", det, *DETECT, "--criterion", "fisher", "--calib-batches", "1",
                         "--ratio", "0.5", "--out", str(tmp_path / "small"))  # fmt: skip
    assert code == 0, err
    assert "groups pruned" in out

    code, out, err = run(capsys, "distill", str(tmp_path / "small"), "--teacher", det,
                         *DETECT, "--epochs", "1", "--hint", "backbone.fpn.layer_blocks.0",
                         "--out", str(tmp_path / "kd"))  # fmt: skip
    assert code == 0, err
    assert "mAP@[.5:.95]: teacher" in out
    extra = _extra(tmp_path / "kd" / "model")
    assert {"map", "teacher_map", "map_before_distill"} <= set(extra) and extra["task"] == "detection"
    assert extra["distill"]["hints"] == [["backbone.fpn.layer_blocks.0", "backbone.fpn.layer_blocks.0"]]

    code, out, err = run(capsys, "eval", str(tmp_path / "kd" / "model"), *DETECT)
    assert code == 0, err
    assert "map " in out and "map_50" in out


def test_a_segmenter_searches_on_held_out_training_canvases(capsys, tmp_path: Path) -> None:
    code, _, err = run(capsys, "train", "lraspp_gray", *SEG, "--epochs", "1", "--out", str(tmp_path / "seg"))
    assert code == 0, err
    seg = str(tmp_path / "seg" / "model")
    code, out, err = run(capsys, "search", seg, *SEG, "--method", "sensitivity", "--ratios", "0.5",
                         "--target-macs", "0.7", "--val-size", "8", "--eval-batches", "1", "--full-batches",
                         "1", "--adapt-bn-batches", "1", "--out", str(tmp_path / "s"))  # fmt: skip
    assert code == 0, err
    assert "held-out mIoU" in out and "test mIoU" in out
    assert _extra(tmp_path / "s" / "model")["task"] == "segmentation"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["prune", "fcos_slim", *DETECT, "--criterion", "hrel", "--out", "x"],
         "'hrel' needs one class label per image, and the detection task's targets are boxes"),
        (["search", "lraspp_gray", *SEG, "--criterion", "hrel", "--target-macs", "0.5", "--out", "x"],
         "'hrel' needs one class label per image, and the segmentation task's targets are pixel maps"),
        (["train", "fcos_slim", "--task", "detection", "--data", "mnist5k", "--out", "x"],
         "task 'detection' reads data 'digits_detect', 'coco' or 'yolo', not 'mnist5k'"),
        (["train", "lenet5", "--data", "digits_seg", "--out", "x"],
         "'digits_seg' is segmentation data: pass '--task segmentation'"),
        (["train", "lenet5", "--data-option", "size=64", "--out", "x"],
         "--data-option is for --task detection / segmentation data"),
        (["train", "fcos_slim", *DETECT, "--data-option", "sise=64", "--out", "x"],
         r"--data-option ['sise'] unknown for 'digits_detect'"),
        (["prune", "fcos_slim", *DETECT, "--depth-blocks", "1", "--out", "x"],
         "--depth-blocks scores blocks on classification data; it does not run --task detection"),
        (["distill", "fcos_slim", "--teacher", "fcos_slim", *DETECT, "--label-smoothing", "0.1",
          "--out", "x"],
         "--label-smoothing is for class labels; the detection loss does not use it"),
        (["train", "fcos_slim", "--task", "detections", "--data", "digits_detect", "--out", "x"],
         "unknown task 'detections'"),
    ],
)  # fmt: skip
def test_what_a_task_cannot_run_is_refused_before_any_work(capsys, argv, message) -> None:
    code, _, err = run(capsys, *argv)
    assert code != 0
    assert message in err


def test_commands_without_dense_tasks_do_not_take_task(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--quiet", "cluster", "lenet5", "--task", "detection", "--out", "x"])
    assert "unrecognized arguments: --task detection" in capsys.readouterr().err


def test_search_refuses_to_hold_out_every_training_canvas(capsys, tmp_path: Path) -> None:
    code, _, err = run(capsys, "search", "lraspp_gray", *SEG, "--target-macs", "0.5", "--val-size", "16",
                       "--out", str(tmp_path / "s"))  # fmt: skip
    assert code != 0
    assert "--val-size holds out 16 of the 16 training canvases" in err


def test_a_detector_trains_on_your_own_coco_files(capsys, tmp_path: Path) -> None:
    """``--data coco`` with the four files as ``--data-option``s: the recipe's COCO loader, from the CLI."""
    from tests.pipeline.test_dense_recipe import _coco_split

    for split, n in (("train", 8), ("test", 4)):
        _coco_split(tmp_path / "data", split, n)
    files = [f"train_annotations={tmp_path}/data/train.json", f"train_images={tmp_path}/data/train",
             f"test_annotations={tmp_path}/data/test.json", f"test_images={tmp_path}/data/test",
             "channels=3", "size=64"]  # fmt: skip
    options = [arg for f in files for arg in ("--data-option", f)]
    code, out, err = run(capsys, "train", "fcos_slim", "--task", "detection", "--data", "coco", *options,
                         "--model-option", "image_size=64", "--batch-size", "4", "--epochs", "1",
                         "--out", str(tmp_path / "run"))  # fmt: skip
    assert code == 0, err
    assert "test mAP@[.5:.95] " in out  # the run summary's name for it (it said "test map")
    extra = _extra(tmp_path / "run" / "model")
    assert extra["input_shape"] == [1, 3, 64, 64] and "map" in extra
    code, _, err = run(capsys, "train", "fcos_slim", "--task", "detection", "--data", "coco", *options[:4],
                       "--out", str(tmp_path / "x"))  # fmt: skip
    assert code != 0 and "needs --data-option test_annotations, test_images" in err


def test_a_detector_trains_on_your_own_yolo_dataset_yaml(capsys, tmp_path: Path) -> None:
    """``--data yolo --data-option yaml=...``: the dataset YAML ultralytics trains on, from the CLI."""
    from tests.data._dense_files import write_yolo

    yaml = write_yolo(tmp_path / "data", {"train": 8, "val": 4})
    code, out, err = run(capsys, "train", "fcos_slim", "--task", "detection", "--data", "yolo",
                         "--data-option", f"yaml={yaml}", "--data-option", "size=64",
                         "--model-option", "image_size=64", "--batch-size", "4", "--epochs", "1",
                         "--out", str(tmp_path / "run"))  # fmt: skip
    assert code == 0, err
    assert "test mAP@[.5:.95] " in out
    extra = _extra(tmp_path / "run" / "model")
    assert extra["input_shape"] == [1, 3, 64, 64] and "map" in extra
    saved = json.loads((tmp_path / "run" / "model" / "netsculpt.json").read_text())
    assert saved["base"]["num_classes"] == 3  # background + the YAML's 2 names
    code, _, err = run(capsys, "train", "fcos_slim", "--task", "detection", "--data", "yolo",
                       "--out", str(tmp_path / "x"))  # fmt: skip
    assert code != 0 and "'yolo' needs --data-option yaml: the dataset YAML" in err


def test_a_segmenter_trains_on_your_own_mask_folders(capsys, tmp_path: Path) -> None:
    """``--data masks --data-option root=...``: images + palette PNG masks, grey input for lraspp_gray."""
    from tests.data._dense_files import write_masks

    write_masks(tmp_path / "data", {"train": 8, "val": 4})
    code, out, err = run(capsys, "train", "lraspp_gray", "--task", "segmentation", "--data", "masks",
                         "--data-option", f"root={tmp_path / 'data'}", "--data-option", "channels=1",
                         "--data-option", "size=32", "--batch-size", "4", "--epochs", "1",
                         "--out", str(tmp_path / "run"))  # fmt: skip
    assert code == 0, err
    assert "test mIoU " in out
    extra = _extra(tmp_path / "run" / "model")
    assert extra["input_shape"] == [1, 1, 32, 32] and "miou" in extra
    saved = json.loads((tmp_path / "run" / "model" / "netsculpt.json").read_text())
    assert saved["base"]["num_classes"] == 3  # ids 0..2 in the masks, inferred


def test_a_segmenter_trains_on_a_cityscapes_folder(capsys, tmp_path: Path) -> None:
    """``--data cityscapes --data-option root=...``: leftImg8bit + gtFine labelIds, 19 training classes."""
    from tests.data._benchmark_files import write_cityscapes

    write_cityscapes(tmp_path / "cityscapes", scale=4)
    code, out, err = run(capsys, "train", "lraspp_gray", "--task", "segmentation", "--data", "cityscapes",
                         "--data-option", f"root={tmp_path / 'cityscapes'}", "--data-option", "channels=1",
                         "--data-option", "size=[16,32]", "--batch-size", "2", "--epochs", "1",
                         "--out", str(tmp_path / "run"))  # fmt: skip
    assert code == 0, err
    assert "test mIoU " in out
    saved = json.loads((tmp_path / "run" / "model" / "netsculpt.json").read_text())
    assert saved["base"]["num_classes"] == 19 and saved["extra"]["input_shape"] == [1, 1, 16, 32]
