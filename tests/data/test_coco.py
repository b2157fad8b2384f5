"""COCO-format annotations + an image folder (data/coco.py), on small files the test writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
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
    image, target = data[1]  # its only annotation is a crowd region: no objects
    assert target["boxes"].shape == (0, 4) and "masks" not in target
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
