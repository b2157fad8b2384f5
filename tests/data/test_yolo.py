"""YOLO-format detection data (data/yolo.py): a dataset YAML, images and label files the test writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from netsculpt.data.yolo import YoloDetection, label_path, parse_labels
from netsculpt.errors import DataError


def _dataset(tmp_path: Path, labels: dict[str, str | None], yaml: str | None = None) -> Path:
    """40x20 PNGs ``images/train/<stem>.png`` with the given label text (None: no label file)."""
    for split in ("train", "val"):
        (tmp_path / "images" / split).mkdir(parents=True, exist_ok=True)
        (tmp_path / "labels" / split).mkdir(parents=True, exist_ok=True)
    for i, (stem, text) in enumerate(sorted(labels.items())):
        Image.fromarray(np.full((20, 40, 3), 10 * (i + 1), np.uint8)).save(
            tmp_path / "images/train" / f"{stem}.png"
        )
        if text is not None:
            (tmp_path / "labels/train" / f"{stem}.txt").write_text(text)
    Image.fromarray(np.zeros((20, 40, 3), np.uint8)).save(tmp_path / "images/val/v.png")
    path = tmp_path / "data.yaml"
    path.write_text(yaml or "path: .\ntrain: images/train\nval: images/val\nnames: [cat, dog]\n")
    return path


def test_boxes_become_pixel_corners_and_labels_leave_zero_for_the_background(tmp_path) -> None:
    yaml = _dataset(
        tmp_path,
        {
            "a": "1 0.5 0.5 0.5 0.5\n\n0 0.1 0.2 0.3 0.2 0.2 0.6\n",  # a box, a blank line, a polygon
            "b": None,  # no label file: no boxes
            "c": "",  # an empty label file: no boxes
        },
    )
    data = YoloDetection(yaml)
    assert len(data) == 3 and data.names == ["cat", "dog"] and data.box_count() == 2
    image, target = data[0]
    assert image.shape == (3, 20, 40) and torch.allclose(image, torch.full_like(image, 10 / 255))
    expected = torch.tensor([[10.0, 5.0, 30.0, 15.0], [4.0, 4.0, 12.0, 12.0]])
    assert torch.allclose(target["boxes"], expected, atol=1e-4)
    assert target["labels"].tolist() == [2, 1] and target["labels"].dtype == torch.int64
    for index in (1, 2):
        _, empty = data[index]
        assert empty["boxes"].shape == (0, 4) and empty["labels"].shape == (0,)
    grey, _ = YoloDetection(yaml, channels=1)[0]
    assert grey.shape == (1, 20, 40)


def test_a_box_reaching_past_the_image_is_clipped_to_it_and_a_repeated_line_kept_once(tmp_path) -> None:
    """As ultralytics reads them: coordinates up to 1% outside [0, 1] (exporters' rounding) clipped, a
    BOM ignored, duplicate lines dropped."""
    text = "\ufeff0 0.05 0.9 0.2 0.4\n1 1.005 -0.005 0.02 0.02\n0 0.05 0.9 0.2 0.4\n0 1.008 0.5 0.01 0.1\n"
    _, target = YoloDetection(_dataset(tmp_path, {"a": text}))[0]  # the last box is wholly past the edge
    expected = torch.tensor([[0.0, 14.0, 6.0, 20.0], [39.8, 0.0, 40.0, 0.1]])
    assert torch.allclose(target["boxes"], expected, atol=1e-4) and target["labels"].tolist() == [1, 2]


def test_a_photo_is_turned_upright_as_its_exif_says_before_its_boxes_are_scaled(tmp_path) -> None:
    """ultralytics reads images through OpenCV, which applies the EXIF orientation; the labels follow."""
    yaml = _dataset(tmp_path, {"a": "0 0.5 0.25 0.5 0.5\n"})
    (tmp_path / "images/train/a.png").unlink()
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 40 wide, 20 high; shown turned a quarter: 20 wide, 40 high
    Image.fromarray(np.zeros((20, 40, 3), np.uint8)).save(tmp_path / "images/train/a.jpg", exif=exif)
    image, target = YoloDetection(yaml)[0]
    assert image.shape == (3, 40, 20)
    assert torch.allclose(target["boxes"], torch.tensor([[5.0, 0.0, 15.0, 20.0]]), atol=1e-4)


def test_names_as_a_dict_txt_lists_and_the_parallel_labels_folder(tmp_path) -> None:
    yaml = _dataset(tmp_path, {"a": "1 0.5 0.5 0.5 0.5\n"})
    (tmp_path / "labels/val/v.txt").write_text("0 0.5 0.5 1 1\n")
    (tmp_path / "val.txt").write_text("./images/val/v.png\n")
    yaml.write_text("train: [images/train]\nval: val.txt\nnames: {0: cat, 1: dog}\nnc: 2\n")  # no path: here
    val = YoloDetection(yaml, "val")
    assert val.names == ["cat", "dog"] and len(val) == 1
    assert torch.allclose(val[0][1]["boxes"], torch.tensor([[0.0, 0.0, 40.0, 20.0]]))
    assert label_path(Path("/d/images/train/images/x.jpg")) == Path("/d/images/train/labels/x.txt")
    assert label_path(Path("/d/pics/x.jpg")) == Path("/d/pics/x.txt")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "0 0.5 0.5 0.5 0.5\n1 0.5 0.5 0.5\n",
            r"a\.txt, line 2 .*: 4 columns; a YOLO detection label line is",
        ),
        ("0 0.5 0.5 0.5 0.5 0.5\n", r"line 1 .*: 6 columns"),
        ("0 12 8 20 10\n", r"line 1 .*coordinates outside \[0, 1\].*divide pixel values"),
        ("0 0.5 0.5 0.5 -0.1\n", r"line 1 .*coordinates outside \[0, 1\]"),
        ("0 0.5 0.5 0.5 1.02\n", r"line 1 .*coordinates outside \[0, 1\]"),
        (
            "2 0.5 0.5 0.5 0.5\n",
            r"line 1 .*class id 2 is not one of the dataset's 2 classes \(0\.\.1\).*names",
        ),
        ("0.5 0.5 0.5 0.5 0.5\n", r"class id 0\.5 is not one"),
        ("dog 0.5 0.5 0.5 0.5\n", r"line 1 .*not all numbers"),
        ("0 0.5 0.5 0 0.5\n", r"line 1 .*an empty box"),
    ],
)
def test_a_bad_label_line_names_the_file_the_line_and_the_fix(tmp_path, text: str, message: str) -> None:
    yaml = _dataset(tmp_path, {"a": text})
    with pytest.raises(DataError, match=message) as info:
        YoloDetection(yaml)
    assert str(tmp_path / "labels/train/a.txt") in str(info.value)


@pytest.mark.parametrize(
    ("yaml", "message"),
    [
        (
            "path: .\ntrain: images/train\nval: images/nope\nnames: [a]\n",
            r"the val split 'images/nope' is neither.*does not exist; create it",
        ),
        ("path: .\ntrain: images/train\nnames: [a]\n", r"has no 'val' split; add e\.g\. 'val: images/val'"),
        ("path: .\ntrain: images/train\nval: images/val\n", r"needs 'names'"),
        ("train: images/train\nval: images/val\nnames: [a, b]\nnc: 3\n", r"nc is 3 but names lists 2"),
        ("train: images/train\nval: images/val\nnames: {0: a, 2: b}\n", r"needs the class ids 0\.\.1"),
        ("- a\n- b\n", r"a YOLO dataset YAML is a mapping"),
        ("path: ../datasets/x\ntrain: a\nval: b\nnames: [a]\n", r"path '../datasets/x' is .*absolute"),
        ("names: [a\n", r"not a YAML file"),
    ],
)
def test_a_bad_dataset_yaml_names_the_file_and_the_fix(tmp_path, yaml: str, message: str) -> None:
    path = _dataset(tmp_path, {"a": "0 0.5 0.5 0.5 0.5\n"}, yaml=yaml)
    with pytest.raises(DataError, match=message) as info:
        YoloDetection(path, "val")
    assert str(path) in str(info.value)


def test_the_yaml_is_never_executed_and_a_missing_one_is_named(tmp_path) -> None:
    marker = tmp_path / "ran"
    yaml = _dataset(tmp_path, {}, yaml=f"!!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(DataError, match="not a YAML file"):
        YoloDetection(yaml)
    assert not marker.exists()
    with pytest.raises(DataError, match=r"'.*nope\.yaml' does not exist"):
        YoloDetection(tmp_path / "nope.yaml")


def test_a_txt_list_naming_a_missing_image_names_its_line(tmp_path) -> None:
    yaml = _dataset(tmp_path, {"a": ""})
    (tmp_path / "val.txt").write_text("images/val/v.png\nimages/val/gone.png\n")
    yaml.write_text("train: images/train\nval: val.txt\nnames: [a]\n")
    with pytest.raises(DataError, match=r"val\.txt, line 2: 'images/val/gone\.png' is not an image file"):
        YoloDetection(yaml, "val")


TOKENS = ["0", "1", "2", "-1", "0.5", "0.25", "1.5", "nan", "inf", "-inf", "1e9", "x", ""]


TOKENS = ["0", "1", "2", "-1", "0.5", "0.25", "1.5", "nan", "inf", "-inf", "1e9", "x", ""]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(st.sampled_from(TOKENS), max_size=9), max_size=4))
def test_any_label_text_loads_in_range_or_is_refused_by_name(tmp_path, lines: list[list[str]]) -> None:
    """Hostile numbers (nan, inf, 1e9) and column counts: a DataError or boxes inside [0, 1], no crash."""
    path = tmp_path / "fuzz.txt"
    path.write_text("\n".join(" ".join(cols) for cols in lines))
    try:
        rows = parse_labels(path, classes=2)
    except DataError as exc:
        assert str(path) in str(exc)
        return
    assert rows.shape[1] == 5 and np.isfinite(rows).all()
    assert set(rows[:, 0].tolist()) <= {0.0, 1.0} and ((rows[:, 1:] >= 0) & (rows[:, 1:] <= 1)).all()
    assert (rows[:, 3] > rows[:, 1]).all() and (rows[:, 4] > rows[:, 2]).all()
