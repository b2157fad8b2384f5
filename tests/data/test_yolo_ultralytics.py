"""netsculpt's YOLO reader against ultralytics' own on the same files: the same images, label files, sizes,
boxes and pose keypoints. ultralytics runs in a subprocess (tests/data/_ultralytics_labels.py): importing
it patches PIL and torch process-wide, and it is AGPL-3.0, so netsculpt's code never imports it."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from netsculpt.data.yolo import YoloDetection, label_path

# find_spec, not importorskip: importing ultralytics here would patch PIL for the rest of the suite
if importlib.util.find_spec("ultralytics") is None:
    pytest.skip("ultralytics is a test-only extra (requirements/lock.txt)", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[2]
LABELS = {
    # boxes: a byte-order mark, a repeated line, a box 1% past the right edge
    "a": "\ufeff0 0.5 0.5 0.5 0.5\n1 0.25 0.75 0.3 0.2\n0 0.5 0.5 0.5 0.5\n1 1.005 0.5 0.02 0.2\n",
    "b": "1 0.1 0.2 0.3 0.2 0.2 0.6\n0 0.5 0.5 0.9 0.5 0.7 0.9 0.5 0.9\n",  # YOLO segment lines only
    "sub/c": None,  # no label file: no boxes
}


def _write(root: Path) -> list[str]:
    for stem, text in LABELS.items():
        (root / "images/train" / stem).parent.mkdir(parents=True, exist_ok=True)
        (root / "labels/train" / stem).parent.mkdir(parents=True, exist_ok=True)
        if text is not None:
            (root / "labels/train" / f"{stem}.txt").write_text(text)
    Image.fromarray(np.zeros((20, 40, 3), np.uint8)).save(root / "images/train/a.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 40 x 20, shown turned a quarter
    Image.fromarray(np.zeros((20, 40, 3), np.uint8)).save(root / "images/train/b.jpg", exif=exif)
    Image.fromarray(np.zeros((30, 30, 3), np.uint8)).save(root / "images/train/sub/c.png")
    (root / "extra.txt").write_text("./images/train/sub/c.png\n./images/train/a.png\n")
    (root / "data.yaml").write_text("train: [images/train, extra.txt]\nval: images/train\nnames: [p, q]\n")
    return [str(root / "images/train"), str(root / "extra.txt")]


# pose labels (kpt_shape [3, 3], then [2, 2]): a BOM, a repeated line, keypoints 0.5% past the edges,
# not labelled (0 0 0), hidden (v 1); two-column keypoints with a negative x (invisible to ultralytics)
POSE = {
    "p": "\ufeff0 0.5 0.5 0.5 0.5 0.3 0.3 2 1.005 0.5 1 0 0 0\n"
    "1 0.2 0.7 0.2 0.4 0.1 0.6 2 0.2 0.8 2 0.3 -0.004 2\n0 0.5 0.5 0.5 0.5 0.3 0.3 2 1.005 0.5 1 0 0 0\n",
    "q": "0 0.5 0.5 0.4 0.4 0.4 0.4 0.6 0.4\n0 0.5 0.5 0.4 0.4 -0.005 0.4 0.6 1.0\n",
}


def _write_pose(root: Path, stem: str, kpt_shape: str) -> str:
    for folder in ("images/train", "labels/train"):
        (root / folder).mkdir(parents=True)
    Image.fromarray(np.zeros((30, 50, 3), np.uint8)).save(root / "images/train/x.png")
    (root / "labels/train/x.txt").write_text(POSE[stem])
    (root / "data.yaml").write_text(
        f"train: images/train\nval: images/train\nnames: [p, q]\nkpt_shape: {kpt_shape}\n"
    )
    return str(root / "images/train")


@pytest.fixture(scope="module")
def answers(tmp_path_factory) -> dict:
    """Every case's files, and ultralytics' reading of them from one worker (its import takes seconds)."""
    roots = {name: tmp_path_factory.mktemp(name) for name in ("boxes", "pose3", "pose2")}
    jobs = [["2", *_write(roots["boxes"])], ["2:3,3", _write_pose(roots["pose3"], "p", "[3, 3]")],
            ["2:2,2", _write_pose(roots["pose2"], "q", "[2, 2]")]]  # fmt: skip
    argv = [arg for job in jobs for arg in ("--", *job)][1:]
    return {name: (root, answer) for (name, root), answer in zip(roots.items(), _ultralytics(argv))}


def _ultralytics(argv: list[str]) -> list[dict]:
    done = subprocess.run(
        [sys.executable, "-m", "tests.data._ultralytics_labels", *argv],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _pixel_rows(rows: list[list[float]], height: int, width: int) -> list[list[float]]:
    """ultralytics' ``[class, cx, cy, w, h]`` as ``[1 + class, x1, y1, x2, y2]`` pixels, clipped to the
    image and without boxes left with no area, as its training transforms leave them; sorted."""
    out = []
    for cls, cx, cy, w, h in rows:
        x1, x2 = np.clip([cx - w / 2, cx + w / 2], 0, 1) * width
        y1, y2 = np.clip([cy - h / 2, cy + h / 2], 0, 1) * height
        if x2 > x1 and y2 > y1:
            out.append([cls + 1, x1, y1, x2, y2])
    return sorted(out)


def test_the_same_images_label_files_sizes_and_boxes_as_ultralytics(answers) -> None:
    root, theirs = answers["boxes"]
    ours = YoloDetection(root / "data.yaml")
    assert [str(p) for p in ours.images] == theirs["images"]  # duplicates from the list included, sorted
    assert len(ours) == 5
    for index, image in enumerate(ours.images):
        read = theirs["read"][str(image)]
        assert read["rows"] is not None, read["msg"]  # ultralytics took the image and its labels
        assert str(label_path(image)) == read["label"]
        pixels, target = ours[index]
        assert list(pixels.shape[-2:]) == read["shape"]
        mine = sorted(torch.cat([target["labels"][:, None].float(), target["boxes"]], 1).tolist())
        expected = _pixel_rows(read["rows"], *read["shape"])
        assert len(mine) == len(expected), (image, mine, expected)
        assert np.allclose(np.array(mine).reshape(-1, 5), np.array(expected).reshape(-1, 5), atol=1e-3)


def _pixel_keypoints(points: list[list[float]], height: int, width: int) -> np.ndarray:
    """ultralytics' normalised ``(K, 3)`` keypoints as its training transforms leave them (``Instances.clip``:
    one outside the image made invisible, then clipped), in pixels."""
    points = np.array(points)
    outside = (points[:, 0] < 0) | (points[:, 0] > 1) | (points[:, 1] < 0) | (points[:, 1] > 1)
    points[outside, 2] = 0
    return np.column_stack([np.clip(points[:, :2], 0, 1) * [width, height], points[:, 2]])


@pytest.mark.parametrize(("case", "kpt_shape"), [("pose3", (3, 3)), ("pose2", (2, 2))])
def test_the_same_pose_keypoints_as_ultralytics(answers, case, kpt_shape) -> None:
    root, theirs = answers[case]
    ours = YoloDetection(root / "data.yaml")
    assert ours.kpt_shape == kpt_shape and [str(p) for p in ours.images] == theirs["images"]
    read = theirs["read"][theirs["images"][0]]
    assert read["keypoints"] is not None, read["msg"]
    _, target = ours[0]
    height, width = read["shape"]
    mine = sorted(
        [
            [*box, *points]
            for box, points in zip(target["boxes"].tolist(), target["keypoints"].flatten(1).tolist())
        ]
    )
    expected = sorted(
        [[*_pixel_rows([row], height, width)[0][1:], *_pixel_keypoints(points, height, width).ravel()]
         for row, points in zip(read["rows"], read["keypoints"])]
    )  # fmt: skip
    assert len(mine) == len(expected) == 2  # pose3's repeated line kept once
    assert np.allclose(np.array(mine), np.array(expected), atol=1e-3), (mine, expected)
