"""Recipes on your own YOLO-format detection data and segmentation mask folders (pipeline/own_data.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import Subset

from netsculpt.errors import ConfigError, DataError
from netsculpt.models import MODELS, register_model
from netsculpt.pipeline import parse_recipe, run_recipe
from netsculpt.pipeline.dense import data_classes, dense_dataset, example_shape
from tests.data._benchmark_files import TRAIN_IDS, write_ade20k, write_cityscapes
from tests.data._dense_files import POSE3, write_masks, write_pose, write_yolo
from tests.pipeline.test_dense_recipe import tiny_segmenter

YOLO = """
version: 1
name: yolo
task: detection
model: {name: fcos_slim, options: {image_size: 64}}
data: {name: yolo, root: ROOT, batch_size: 4, options: {yaml: data.yaml, size: 64}}
baseline: {train: {epochs: 1, optimizer: adamw, lr: 0.002, warmup_epochs: 0}}
stages:
  - prune: {criterion: taylor, ratio: 0.5, calib_batches: 1}
  - finetune: {epochs: 1, optimizer: adamw, lr: 0.001, warmup_epochs: 0}
outputs: {latency_runs: 2, report: false}
"""

MASKS = """
version: 1
name: masks
task: segmentation
model: {name: test_tiny_segmenter}
data: {name: masks, root: ROOT, batch_size: 4, options: {root: ., size: 32}}
baseline: {train: {epochs: 1, optimizer: adamw, lr: 0.002, warmup_epochs: 0}}
stages:
  - prune: {criterion: l1, ratio: 0.5}
  - finetune: {epochs: 1, optimizer: adamw, lr: 0.001, warmup_epochs: 0}
outputs: {latency_runs: 2, report: false}
"""

CITYSCAPES = MASKS.replace("name: masks, root", "name: cityscapes, root").replace(
    "size: 32}", "size: [8, 16]}"
)
ADE20K = MASKS.replace("name: masks, root", "name: ade20k, root").replace("size: 32}", "size: 12}")


@pytest.fixture(autouse=True)
def _tiny_segmenter_registered(monkeypatch) -> None:
    monkeypatch.setattr(MODELS, "_entries", dict(MODELS._entries))  # restored after the test
    register_model("test_tiny_segmenter", input_shape=(3, 32, 32), num_classes=3)(tiny_segmenter)


def _recipe(text: str, root: object = "/nowhere", *overrides: str):
    return parse_recipe(text.replace("ROOT", str(root)), overrides=list(overrides))


@pytest.mark.parametrize(
    ("text", "overrides", "message"),
    [
        (YOLO, ["data.options={size: 64}"], r"data 'yolo' needs data\.options yaml: the dataset YAML"),
        (YOLO, ["data.options.test_split=train"], r"test_split must be val or test"),
        (YOLO, ["data.options.classes=3"], r"\['classes'\] unknown for 'yolo'; it takes: yaml, test_split"),
        (YOLO, ["data.options.size=[64,48]"], r"size must be an integer >= 8 \(the example"),
        (YOLO, ["data.options.kpt_sigmas=[0.1,-1]"], r"kpt_sigmas must be a list of positive numbers"),
        (YOLO, ["data.resize=64"], r"'yolo': set the example input's side with data\.options\.size"),
        (MASKS, ["data.options={size: 32}"], r"data 'masks' needs data\.options root: the folder"),
        (MASKS, ["data.options.num_classes=1"], r"num_classes must be an integer in 2\.\.255"),
        (MASKS, ["data.options.channels=2"], r"channels must be 1 or 3"),
        (MASKS, ["task=detection"], r"reads data 'digits_detect', 'coco' or 'yolo', not 'masks'"),
        (CITYSCAPES, ["data.options={size: 32}"], r"data 'cityscapes' needs data\.options root: the folder"),
        (
            CITYSCAPES,
            ["data.options.test_split=test"],
            r"\['test_split'\] unknown for 'cityscapes'; it takes: root",
        ),
        (ADE20K, ["data.options.size=[8]"], r"size must be an integer >= 8 or \[height, width\]"),
        (ADE20K, ["data.options.num_classes=150"], r"\['num_classes'\] unknown for 'ade20k'; it takes: root"),
        (YOLO, ["data.options.flip=1.5"], r"flip is the chance a training image is mirrored .* got 1\.5"),
        (YOLO, ["data.name=digits_detect", "data.options={flip: 0.5}"], r"a mirrored digit is another shape"),
    ],
)
def test_own_data_options_are_checked_when_the_recipe_is_read(text, overrides, message) -> None:
    with pytest.raises(ConfigError, match=message):
        _recipe(text, "/nowhere", *overrides)


def test_a_yolo_recipe_reads_its_splits_classes_and_example_shape(tmp_path) -> None:
    write_yolo(tmp_path, {"train": 5, "val": 2, "test": 3})
    (tmp_path / "data.yaml").write_text((tmp_path / "data.yaml").read_text() + "test: images/test\n")
    recipe = _recipe(YOLO, tmp_path)
    assert data_classes(recipe) == 3 and example_shape(recipe) == (1, 3, 64, 64)  # background + 2 names
    assert len(dense_dataset(recipe, "train")) == 5 and len(dense_dataset(recipe, "test")) == 2  # val
    assert len(dense_dataset(_recipe(YOLO, tmp_path, "data.options.test_split=test"), "test")) == 3
    limited = dense_dataset(_recipe(YOLO, tmp_path, "data.limit=2"), "train")
    assert isinstance(limited, Subset) and list(limited.indices) == [0, 1]
    for i in range(2):  # the val labels as written: 1 + class, boxes inside the 64 px image
        _, target = dense_dataset(recipe, "test")[i]
        lines = (tmp_path / "labels" / "val" / f"{i}.txt").read_text().split("\n")
        assert target["labels"].tolist() == [1 + int(line.split()[0]) for line in lines if line]
        assert target["boxes"].min() >= 0 and target["boxes"].max() <= 64


def test_a_yolo_test_split_without_boxes_is_refused_before_any_training(tmp_path) -> None:
    write_yolo(tmp_path, {"train": 2, "val": 1})
    (tmp_path / "labels" / "val" / "0.txt").unlink()
    with pytest.raises(
        DataError, match=r"data\.yaml \(val\): no .* ground-truth boxes.*point val: at labelled"
    ):
        dense_dataset(_recipe(YOLO, tmp_path), "test")


def test_masks_test_split_is_read_with_the_training_masks_class_count(tmp_path) -> None:
    write_masks(tmp_path, {"train": 4, "val": 2})
    recipe = _recipe(MASKS, tmp_path)
    assert data_classes(recipe) == 3 and example_shape(recipe) == (1, 3, 32, 32)
    image, mask = dense_dataset(recipe, "test")[0]
    assert image.shape == (3, 32, 32) and set(mask.unique().tolist()) <= {0, 1, 2, 255}
    tall = _recipe(MASKS, tmp_path, "data.options.size=[32,16]", "data.options.num_classes=5")
    assert data_classes(tall) == 5 and example_shape(tall) == (1, 3, 32, 16)
    assert dense_dataset(tall, "train")[0][1].shape == (32, 16)


def test_a_recipe_on_your_own_yolo_files(tmp_path) -> None:
    write_yolo(tmp_path / "data", {"train": 8, "val": 4})
    text = YOLO.replace("ROOT", str(tmp_path / "data"))
    results = run_recipe(_recipe(text), text, tmp_path / "run")
    assert results["task"]["label"] == "mAP@[.5:.95]" and results["after"]["macs"] < results["before"]["macs"]
    assert set(results["after"]["task_metrics"]) == {"map", "map_50"}


def test_a_recipe_on_your_own_mask_folders(tmp_path) -> None:
    write_masks(tmp_path / "data", {"train": 8, "val": 4})
    text = MASKS.replace("ROOT", str(tmp_path / "data"))
    results = run_recipe(
        _recipe(text), text, tmp_path / "run", trust_builder="tests.pipeline.test_dense_recipe:tiny_segmenter"
    )
    assert results["task"]["label"] == "mIoU" and results["after"]["macs"] < results["before"]["macs"]
    assert set(results["after"]["task_metrics"]) == {"miou", "pixel_acc"}
    assert 0 <= results["after"]["accuracy"] <= 1


def test_cityscapes_and_ade20k_recipes_train_on_train_and_report_on_val(tmp_path) -> None:
    write_cityscapes(tmp_path / "city", scale=4)  # 32x16 frames
    city = _recipe(CITYSCAPES.replace("root: .", "root: city"), tmp_path)
    assert data_classes(city) == 19 and example_shape(city) == (1, 3, 8, 16)
    assert len(dense_dataset(city, "train")) == 2 and len(dense_dataset(city, "test")) == 1  # val
    image, mask = dense_dataset(city, "test")[0]
    assert image.shape == (3, 8, 16) and torch.equal(
        mask, torch.from_numpy(np.kron(TRAIN_IDS, np.ones((2, 2)))).long()
    )
    default = _recipe(CITYSCAPES.replace("root: .", "root: city"), tmp_path, "data.options={root: city}")
    assert example_shape(default) == (1, 3, 256, 512)  # a quarter of 2048x1024's sides, 2:1 kept
    write_ade20k(tmp_path / "ade", scale=4)
    ade = _recipe(ADE20K.replace("root: .", "root: ade"), tmp_path)
    assert data_classes(ade) == 150 and example_shape(ade) == (1, 3, 12, 12)
    assert len(dense_dataset(ade, "train")) == 2 and len(dense_dataset(ade, "test")) == 1


def test_a_yolo_recipe_on_a_pose_dataset_yields_keypoints_for_keypoint_rcnn(tmp_path) -> None:
    write_pose(tmp_path, {"a": POSE3}, "kpt_shape: [4, 3]\nflip_idx: [0, 1, 3, 2]\n")
    recipe = _recipe(YOLO, tmp_path)
    _, target = dense_dataset(recipe, "test")[0]
    assert data_classes(recipe) == 3 and target["keypoints"].shape == (1, 4, 3)
    assert target["keypoints"][0, 0].tolist() == [8, 4, 2]  # (0.2, 0.2) of a 40x20 image, visible


def test_data_options_kpt_sigmas_reach_the_detection_task(tmp_path) -> None:
    from netsculpt.pipeline.run_context import dense_context

    write_pose(tmp_path, {"a": POSE3}, "kpt_shape: [4, 3]\n")
    ctx = dense_context(_recipe(YOLO, tmp_path, "data.options.kpt_sigmas=[0.1,0.2,0.2,0.3]"), tmp_path)
    assert ctx.task.kpt_sigmas == [0.1, 0.2, 0.2, 0.3]
    assert ctx.task.evaluator().map.keypoints.sigmas == [0.1, 0.2, 0.2, 0.3]
    write_pose(tmp_path, {"a": POSE3}, "kpt_shape: [4, 3]\nkpt_oks_sigmas: [0.5, 0.5, 0.5, 0.25]\n")
    assert dense_context(_recipe(YOLO, tmp_path), tmp_path).task.kpt_sigmas == [0.5, 0.5, 0.5, 0.25]
    own = _recipe(YOLO, tmp_path, "data.options.kpt_sigmas=[1,1,1,1]")
    assert dense_context(own, tmp_path).task.kpt_sigmas == [1, 1, 1, 1]  # the recipe's wins over the YAML's


def test_flip_mirrors_training_samples_but_never_the_held_out_or_test_ones(tmp_path) -> None:
    from netsculpt.data.flip import HorizontalFlip
    from netsculpt.pipeline.dense import dense_loaders, held_out_split
    from netsculpt.tasks import get_task

    write_pose(tmp_path, {str(i): POSE3 for i in range(4)}, "kpt_shape: [4, 3]\nflip_idx: [0, 1, 3, 2]\n")
    task = get_task("detection")
    train, test = dense_loaders(_recipe(YOLO, tmp_path, "data.options.flip=1.0"), task, 2)
    assert isinstance(train.dataset, HorizontalFlip) and not isinstance(test.dataset, HorizontalFlip)
    assert train.dataset[0][1]["keypoints"][0, 0].tolist() == [32, 4, 2]  # 40 - 8, as in tests/data
    rest, held = held_out_split(train, task, 2, 0, "early_stop.holdout")
    assert rest.dataset.dataset is train.dataset and held.dataset.dataset is train.dataset.dataset
    assert held.dataset[0][1]["keypoints"][0, 0].tolist() == [8, 4, 2]
    plain, _ = dense_loaders(_recipe(YOLO, tmp_path), task, 2)
    assert not isinstance(plain.dataset, HorizontalFlip)
    write_pose(tmp_path, {"a": POSE3}, "kpt_shape: [4, 3]\n")  # no flip_idx: refused, not trained wrong
    with pytest.raises(DataError, match="no flip_idx"):
        dense_loaders(_recipe(YOLO, tmp_path, "data.options.flip=0.5"), task, 2)
