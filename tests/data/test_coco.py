"""COCO-format annotations + an image folder (data/coco.py), on small files the test writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from netsculpt.data.coco import CocoDetection
from netsculpt.errors import DataError


def _write(tmp_path: Path, annotations: list[dict] | None = None) -> Path:
    (tmp_path / "img").mkdir(exist_ok=True)
    for i, name in enumerate(("a.png", "b.png")):
        pixels = np.full((20, 30, 3), 40 * (i + 1), np.uint8)
        Image.fromarray(pixels).save(tmp_path / "img" / name)
    data = {
        "images": [{"id": 7, "file_name": "a.png"}, {"id": 9, "file_name": "b.png"}],
        "categories": [{"id": 5, "name": "cat"}, {"id": 2, "name": "dog"}],
        "annotations": annotations
        if annotations is not None
        else [
            {
                "id": 1,
                "image_id": 7,
                "category_id": 2,
                "bbox": [2, 3, 10, 5],
                "segmentation": [[2, 3, 12, 3, 12, 8, 2, 8]],
            },
            {
                "id": 2,
                "image_id": 7,
                "category_id": 5,
                "bbox": [0, 0, 4, 4],
                "segmentation": [[0, 0, 4, 0, 4, 4]],
            },
            {"id": 3, "image_id": 9, "category_id": 5, "bbox": [1, 1, 2, 2], "iscrowd": 1},
        ],
    }
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data))
    return path


def test_boxes_labels_and_masks(tmp_path: Path) -> None:
    data = CocoDetection(_write(tmp_path), tmp_path / "img")
    assert len(data) == 2 and data.names == ["cat", "dog"]
    image, target = data[0]
    assert image.shape == (3, 20, 30) and abs(float(image.max()) - 40 / 255) < 1e-6
    assert target["boxes"].tolist() == [[2, 3, 12, 8], [0, 0, 4, 4]]
    assert target["labels"].tolist() == [2, 1]  # category 2 is the second listed: label 2; 5 is label 1
    assert int(target["image_id"]) == 7
    masks = target["masks"]
    assert masks.shape == (2, 20, 30) and masks[0, 5, 6] == 1 and masks[0, 15, 25] == 0
    image, target = data[1]  # its only annotation is a crowd region: no objects, kept for evaluation
    assert target["boxes"].shape == (0, 4) and "masks" not in target
    assert target["crowd_boxes"].tolist() == [[1, 1, 3, 3]] and target["crowd_labels"].tolist() == [1]
    assert "crowd_boxes" not in data[0][1]
    assert CocoDetection(tmp_path / "ann.json", tmp_path / "img", channels=1)[0][0].shape == (1, 20, 30)


@pytest.mark.parametrize(
    ("annotations", "match"),
    [
        ([{"id": 1, "image_id": 7, "category_id": 5, "bbox": [1, 2]}], "needs bbox"),
        ([{"id": 1, "image_id": 7, "category_id": 5, "bbox": [1, 2, 0, 3]}], "empty box"),
        ([{"id": 1, "image_id": 8, "category_id": 5, "bbox": [1, 2, 3, 3]}], "unknown image_id"),
        ([{"id": 1, "image_id": 7, "category_id": 4, "bbox": [1, 2, 3, 3]}], "unknown category_id"),
    ],
)
def test_malformed_annotations_name_the_field(tmp_path: Path, annotations: list[dict], match: str) -> None:
    with pytest.raises(DataError, match=match):
        CocoDetection(_write(tmp_path, annotations), tmp_path / "img")


def test_missing_files_are_explained(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        CocoDetection(tmp_path / "none.json", tmp_path)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match="not a JSON file"):
        CocoDetection(tmp_path / "bad.json", tmp_path)
    (tmp_path / "list.json").write_text(json.dumps({"images": []}))
    with pytest.raises(DataError, match="'annotations'"):
        CocoDetection(tmp_path / "list.json", tmp_path)
    path = _write(tmp_path)
    (tmp_path / "img" / "b.png").unlink()
    with pytest.raises(DataError, match="not in"):
        CocoDetection(path, tmp_path / "img")
    with pytest.raises(DataError, match="channels must be"):
        CocoDetection(path, tmp_path / "img", channels=2)


def test_a_test_file_is_labelled_through_the_training_categories(tmp_path: Path) -> None:
    """A test file listing the same categories in another order (or only those it uses) gave the same
    class another label, and another mAP, silently."""
    train = CocoDetection(_write(tmp_path), tmp_path / "img")
    data = json.loads((tmp_path / "ann.json").read_text())
    data["categories"] = [{"id": 2, "name": "dog"}]  # reordered and cut to the ids it uses
    data["annotations"] = [a for a in data["annotations"] if a["category_id"] == 2]
    (tmp_path / "test.json").write_text(json.dumps(data))
    test = CocoDetection(tmp_path / "test.json", tmp_path / "img", categories=train.categories)
    assert test[0][1]["labels"].tolist() == [2] == [train.label_of[2]]
    data["categories"].append({"id": 11, "name": "new"})
    (tmp_path / "test.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"category ids \[11\] are not among the training"):
        CocoDetection(tmp_path / "test.json", tmp_path / "img", categories=train.categories)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda d: d["categories"].append({"name": "x"}), r"categories\[2\] must be an object with id"),
        (lambda d: d["images"].append({"id": 3}), r"images\[2\] must be an object with id and file_name"),
        (lambda d: d["images"].__setitem__(0, {"id": "a1", "file_name": "a.png"}), "ids are integers"),
        (lambda d: d["images"].append({"id": 7, "file_name": "b.png"}), "lists id 7 twice"),
        (lambda d: d["categories"].append({"id": 5}), "lists id 5 twice"),
        (lambda d: d["images"].append({"id": 4, "file_name": "/etc/passwd"}), "inside the image folder"),
        (lambda d: d["images"].append({"id": 4, "file_name": "../a.png"}), "inside the image folder"),
        (lambda d: d["annotations"].append("box"), r"annotations\[3\] must be an object"),
    ],
)
def test_malformed_entries_are_refused_naming_the_entry(tmp_path: Path, change, match: str) -> None:
    path = _write(tmp_path)
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=match):
        CocoDetection(path, tmp_path / "img")


def test_an_unreadable_image_is_a_data_error_naming_it(tmp_path: Path) -> None:
    path = _write(tmp_path)
    (tmp_path / "img" / "a.png").write_text("not an image")
    with pytest.raises(DataError, match=r"a\.png: not a readable image"):
        CocoDetection(path, tmp_path / "img")[0]


def _write_keypoints(tmp_path: Path, first: list[float], **ann: object) -> Path:
    """A COCO keypoint file: 3 keypoints (nose, left eye, right eye) on one person; ``ann`` edits it."""
    person = {"id": 1, "image_id": 7, "category_id": 5, "bbox": [2, 3, 10, 5], "keypoints": first,
              "num_keypoints": sum(1 for v in first[2::3] if v > 0), **ann}  # fmt: skip
    path = _write(tmp_path, [person, {"id": 2, "image_id": 7, "category_id": 2, "bbox": [0, 0, 4, 4]}])
    data = json.loads(path.read_text())
    data["categories"][0].update(keypoints=["nose", "left_eye", "right_eye"], skeleton=[[1, 2], [1, 3]])
    path.write_text(json.dumps(data))
    return path


def test_keypoints_become_n_k_3_like_the_yolo_reader(tmp_path: Path) -> None:
    data = CocoDetection(_write_keypoints(tmp_path, [5, 4, 2, 4, 3, 1, 0, 0, 0]), tmp_path / "img")
    assert data.num_keypoints == 3 and data.keypoint_names == ["nose", "left_eye", "right_eye"]
    assert data.skeleton == [(1, 2), (1, 3)]
    _, target = data[0]
    assert target["keypoints"].shape == (2, 3, 3) and target["keypoints"].dtype == torch.float32
    assert target["keypoints"][0].tolist() == [[5, 4, 2], [4, 3, 1], [0, 0, 0]]  # pixels, v as written
    assert target["keypoints"][1].abs().sum() == 0  # the dog has no keypoints: all unlabelled (v = 0)
    assert data[1][1]["keypoints"].shape == (0, 3, 3)  # only a crowd region: no objects
    assert "keypoints" not in CocoDetection(_write(tmp_path), tmp_path / "img")[0][1]


def test_keypoint_targets_carry_cocos_mask_areas_as_the_oks_scale(tmp_path: Path) -> None:
    path = _write_keypoints(tmp_path, [5, 4, 2, 4, 3, 1, 0, 0, 0], area=31.5)
    assert "area" not in CocoDetection(path, tmp_path / "img")[0][1]  # the dog has none: 0.53 x box for all
    data = json.loads(path.read_text())
    for ann in data["annotations"]:
        ann.setdefault("area", 9.0)
    path.write_text(json.dumps(data))
    assert CocoDetection(path, tmp_path / "img")[0][1]["area"].tolist() == [31.5, 9.0]


@pytest.mark.parametrize(
    ("points", "ann", "match"),
    [
        ([5, 4, 2, 4, 3, 1], {}, r"annotation 1 has keypoints of 6 values.*name 3 keypoints, so it needs 9"),
        ([5, 4, 2, 4, 3, 1, 0, 0, 3], {}, "visibility that is not 0"),
        ([5, 4, 2, 4, 3, 1, 0, 0, 0], {"num_keypoints": 3}, "says num_keypoints 3 but labels 2"),
        ([5, 4, 2, 4, "x", 1, 0, 0, 0], {}, "not a number"),
    ],
)
def test_malformed_keypoints_name_the_annotation(tmp_path: Path, points: list, ann: dict, match: str) -> None:
    with pytest.raises(DataError, match=match) as info:
        CocoDetection(_write_keypoints(tmp_path, points, **ann), tmp_path / "img")
    assert "ann.json" in str(info.value)


def test_a_bad_skeleton_or_two_keypoint_counts_are_refused(tmp_path: Path) -> None:
    path = _write_keypoints(tmp_path, [5, 4, 2, 4, 3, 1, 0, 0, 0])
    data = json.loads(path.read_text())
    data["categories"][0]["skeleton"] = [[0, 1]]  # COCO's keypoint numbers are 1-based
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"skeleton must list pairs of keypoint numbers 1\.\.3"):
        CocoDetection(path, tmp_path / "img")
    data["categories"][0]["skeleton"] = [[1, 3]]
    data["categories"][1].update(keypoints=["head", "tail"])  # a keypoint R-CNN predicts one K for all
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"categories\[1\] names 2 keypoints, an earlier category 3"):
        CocoDetection(path, tmp_path / "img")


def test_keypoints_without_named_categories_take_k_from_their_length(tmp_path: Path) -> None:
    path = _write_keypoints(tmp_path, [5, 4, 2, 4, 3, 1, 0, 0, 0])
    data = json.loads(path.read_text())
    del data["categories"][0]["keypoints"], data["categories"][0]["skeleton"]
    path.write_text(json.dumps(data))
    assert CocoDetection(path, tmp_path / "img")[0][1]["keypoints"].shape == (2, 3, 3)
    data["annotations"][1]["keypoints"] = [1, 1, 2]  # one keypoint here, three on the person
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"keypoint lists of \[3, 9\] values"):
        CocoDetection(path, tmp_path / "img")
