"""YOLO pose labels (data/yolo_pose.py through YoloDetection): keypoints beside the boxes, in pixels with
visibility, as torchvision's keypoint R-CNN trains on them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from netsculpt.data.yolo import YoloDetection, parse_labels
from netsculpt.errors import DataError
from tests.data._dense_files import POSE3, write_pose

POSE2 = "1 0.5 0.5 0.5 0.5 0.2 0.2 0.5 0.5 0 0 1.005 0.5\n"  # 13 columns: not a polygon of 6 points


def test_keypoints_arrive_in_pixels_with_visibility_beside_boxes_and_labels(tmp_path) -> None:
    data = YoloDetection(
        write_pose(tmp_path, {"a": POSE3, "b": ""}, "kpt_shape: [4, 3]\nflip_idx: [0, 1, 3, 2]\n")
    )
    assert data.kpt_shape == (4, 3) and data.flip_idx == (0, 1, 3, 2)
    _, target = data[0]
    assert torch.allclose(target["boxes"], torch.tensor([[10.0, 5.0, 30.0, 15.0]]))
    assert target["labels"].tolist() == [1]
    expected = [[[8, 4, 2], [20, 10, 1], [0, 0, 0], [40, 10, 0]]]
    assert target["keypoints"].dtype == torch.float32 and target["keypoints"].tolist() == expected
    assert data[1][1]["keypoints"].shape == (0, 4, 3)  # an empty label file: no person, no keypoints


def test_two_column_keypoints_are_visible_unless_negative_and_never_read_as_a_polygon(tmp_path) -> None:
    data = YoloDetection(write_pose(tmp_path, {"a": POSE2}, "kpt_shape: [4, 2]\n"))
    _, target = data[0]
    assert torch.allclose(target["boxes"], torch.tensor([[10.0, 5.0, 30.0, 15.0]]))  # the box, not an extent
    assert target["labels"].tolist() == [2] and data.flip_idx is None
    assert target["keypoints"].tolist() == [[[8, 4, 1], [20, 10, 1], [0, 0, 1], [40, 10, 0]]]


def test_an_even_column_count_is_a_pose_line_when_the_yaml_says_so(tmp_path) -> None:
    """kpt_shape [3, 3]: 14 columns, which a box dataset refuses as a polygon with an odd coordinate."""
    data = YoloDetection(
        write_pose(
            tmp_path, {"a": "0 0.5 0.5 0.5 0.5 0.2 0.2 2 0.5 0.5 2 0.75 0.5 1\n"}, "kpt_shape: [3, 3]\n"
        )
    )
    assert data[0][1]["keypoints"].tolist() == [[[8, 4, 2], [20, 10, 2], [30, 10, 1]]]


@pytest.mark.parametrize(
    ("label", "extra", "message"),
    [
        (
            "0 0.5 0.5 0.5 0.5\n",
            "kpt_shape: [4, 3]\n",
            r"a\.txt, line 1 .*5 columns; a line of this YOLO pose "
            r"dataset is 'class cx cy w h' and 4 keypoints 'px py v' \(17 columns, kpt_shape \[4, 3\]",
        ),
        (
            POSE3.replace("0.2 0.2 2", "3.0 0.2 2"),
            "kpt_shape: [4, 3]\n",
            r"keypoint coordinates outside \[0, 1\]",
        ),
        (
            POSE3.replace("0.2 0.2 2", "0.2 0.2 -1"),
            "kpt_shape: [4, 3]\n",
            r"a keypoint visibility that is not 0 \(not labelled\), 1 or 2",
        ),
        (
            POSE3,
            "kpt_shape: [4, 4]\n",
            r"data\.yaml: kpt_shape is \[4, 4\]; it must be \[keypoints, 2 or 3\]",
        ),
        (POSE3, "kpt_shape: 17\n", r"kpt_shape is 17"),
        (
            POSE3,
            "kpt_shape: [4, 3]\nflip_idx: [0, 1, 2]\n",
            r"flip_idx is \[0, 1, 2\]; it must name each of the 4",
        ),
        (POSE3, "kpt_shape: [4, 3]\nflip_idx: [0, 1, 1, 2]\n", r"keypoints 0\.\.3 once"),
        (POSE3, "kpt_shape: [4, 3]\nkpt_oks_sigmas: [0.1, 0.1]\n", r"one positive number per keypoint \(4"),
        (POSE3, "kpt_shape: [4, 3]\nkpt_oks_sigmas: [0.1, 0.1, 0, 0.1]\n", r"kpt_oks_sigmas is"),
        (POSE3, "flip_idx: [0, 1, 3, 2]\n", r"flip_idx without kpt_shape; add kpt_shape"),
    ],
)
def test_malformed_pose_labels_and_yaml_fields_are_named_with_the_fix(
    tmp_path, label, extra, message
) -> None:
    with pytest.raises(DataError, match=message):
        YoloDetection(write_pose(tmp_path, {"a": label}, extra))


def test_keypoint_rcnn_trains_on_the_targets_and_only_on_visible_keypoints(tmp_path) -> None:
    """torchvision's KeypointRCNN (tiny backbone and heads: the loss code keypointrcnn_resnet50_fpn runs)
    through the detection task's collate and loss, as netsculpt's training loop calls them."""
    from torchvision.models.detection import KeypointRCNN
    from torchvision.models.detection.keypoint_rcnn import KeypointRCNNHeads, KeypointRCNNPredictor
    from torchvision.models.detection.rpn import AnchorGenerator

    from netsculpt.tasks import get_task

    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Conv2d(3, 8, 3, stride=4, padding=1), nn.ReLU())
    backbone.out_channels = 8  # type: ignore[assignment]
    model = KeypointRCNN(backbone, num_classes=3, min_size=20, max_size=40,
                         rpn_anchor_generator=AnchorGenerator(((16, 32),), ((1.0, 2.0),)),
                         keypoint_head=KeypointRCNNHeads(8, (16,)),
                         keypoint_predictor=KeypointRCNNPredictor(16, 4),
                         box_batch_size_per_image=16, rpn_batch_size_per_image=16)  # fmt: skip
    task = get_task("detection")
    hidden = POSE3.replace(" 2 ", " 0 ").replace(" 1 ", " 0 ").replace(" 2\n", " 0\n")
    data = YoloDetection(write_pose(tmp_path, {"a": POSE3, "b": hidden}))
    assert data[1][1]["keypoints"][..., 2].tolist() == [[0, 0, 0, 0]]
    model.train()
    images, targets = task.collate([data[0], data[0]])
    loss, parts = task.loss(model, images, targets)
    loss.backward()
    assert torch.isfinite(loss) and parts["loss_keypoint"] > 0
    _, parts = task.loss(model, *task.collate([data[1], data[1]]))
    assert parts["loss_keypoint"] == 0  # torchvision: v > 0 is visible; none is, so nothing to learn


TOKENS = ["0", "1", "2", "-1", "0.5", "0.25", "1.005", "nan", "inf", "-inf", "1e9", "x"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(st.sampled_from(TOKENS), min_size=9, max_size=12), max_size=3))
def test_any_pose_label_text_loads_in_range_or_is_refused_by_name(tmp_path, lines: list[list[str]]) -> None:
    """kpt_shape [2, 3] (11 columns): hostile numbers give a DataError naming the file, or keypoints inside
    [0, 1] with a finite visibility >= 0; never a crash or a nan."""
    path = tmp_path / "fuzz.txt"
    path.write_text("\n".join(" ".join(cols) for cols in lines))
    try:
        rows = parse_labels(path, classes=2, kpt_shape=(2, 3))
    except DataError as exc:
        assert str(path) in str(exc)
        return
    assert rows.shape[1] == 11 and np.isfinite(rows).all()
    points = rows[:, 5:].reshape(-1, 2, 3)
    assert ((points[..., :2] >= 0) & (points[..., :2] <= 1)).all() and (points[..., 2] >= 0).all()
