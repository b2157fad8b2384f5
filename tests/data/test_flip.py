"""data.options.flip: a mirrored training sample whose boxes, masks, keypoints and maps moved with it."""

from __future__ import annotations

import pytest
import torch

from netsculpt.data.coco import CocoDetection
from netsculpt.data.flip import HorizontalFlip, flip_idx_of, flip_target, mirrored_keypoints
from netsculpt.data.yolo import YoloDetection
from netsculpt.errors import DataError
from tests.data._dense_files import POSE3, write_pose
from tests.data.test_coco import _write_keypoints

COCO_PERSON = ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
               "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
               "right_knee", "left_ankle", "right_ankle"]  # fmt: skip


def test_a_flipped_box_still_covers_its_object_and_flipping_twice_is_the_identity() -> None:
    image = torch.zeros(1, 4, 10)
    image[:, 1:3, 2:5] = 1  # the object: columns 2, 3, 4
    target = {
        "boxes": torch.tensor([[2.0, 1.0, 5.0, 3.0]]),
        "crowd_boxes": torch.tensor([[0.0, 0.0, 1.0, 1.0]]),
        "masks": (image > 0).to(torch.uint8),
        "keypoints": torch.tensor([[[2.5, 1.5, 2.0], [4.5, 2.5, 1.0], [0.0, 0.0, 0.0]]]),
        "labels": torch.tensor([1]),
    }
    flipped = flip_target(target, 10, (1, 0, 2))
    x1, _, x2, _ = flipped["boxes"][0].tolist()
    mirrored = image.flip(-1)
    assert (x1, x2) == (5.0, 8.0) and mirrored[0, 1, 5:8].eq(1).all() and mirrored[0].sum() == 6
    assert flipped["crowd_boxes"].tolist() == [[9.0, 0.0, 10.0, 1.0]]
    assert torch.equal(flipped["masks"], target["masks"].flip(-1))
    # x -> W - x for the labelled ones, then swapped: keypoint 0 is now the mirror of keypoint 1
    assert flipped["keypoints"].tolist() == [[[5.5, 2.5, 1.0], [7.5, 1.5, 2.0], [0.0, 0.0, 0.0]]]
    again = flip_target(flipped, 10, (1, 0, 2))
    for key in ("boxes", "crowd_boxes", "masks", "keypoints"):
        assert torch.equal(again[key], target[key])
    assert torch.equal(flip_target(torch.tensor([[0, 1, 2]]), 3, None), torch.tensor([[2, 1, 0]]))


def test_flip_idx_comes_from_left_and_right_names() -> None:
    assert mirrored_keypoints(COCO_PERSON) == (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15)
    assert mirrored_keypoints(["hand_left", "hand_right", "head"]) == (1, 0, 2)
    assert mirrored_keypoints(["l_foot", "r_foot"]) == (1, 0)
    assert mirrored_keypoints(["a", "b", "c"]) is None


def test_yolo_pose_flips_with_its_yamls_flip_idx_and_unnamed_keypoints_are_refused(tmp_path) -> None:
    data = YoloDetection(
        write_pose(tmp_path / "a", {"a": POSE3}, "kpt_shape: [4, 3]\nflip_idx: [0, 1, 3, 2]\n")
    )
    assert flip_idx_of(data) == (0, 1, 3, 2)
    always = HorizontalFlip(data, 1.0, flip_idx_of(data))
    image, target = always[0]
    assert torch.equal(image, data[0][0].flip(-1))
    assert target["boxes"].tolist() == [[10.0, 5.0, 30.0, 15.0]]  # centred: its own mirror
    # [[8, 4, 2], [20, 10, 1], [0, 0, 0], [40, 10, 0]] mirrored in a 40 px image, keypoints 2 and 3 swapped
    assert target["keypoints"].tolist() == [[[32, 4, 2], [20, 10, 1], [40, 10, 0], [0, 0, 0]]]
    assert torch.equal(HorizontalFlip(data, 0.0, (0, 1, 3, 2))[0][1]["keypoints"], data[0][1]["keypoints"])
    bare = YoloDetection(write_pose(tmp_path / "b", {"a": POSE3}))
    with pytest.raises(DataError, match=r"no flip_idx .* add flip_idx to the dataset YAML, or remove flip"):
        flip_idx_of(bare)


def test_coco_keypoints_take_flip_idx_from_their_names(tmp_path) -> None:
    data = CocoDetection(_write_keypoints(tmp_path, [5, 4, 2, 4, 3, 1, 0, 0, 0]), tmp_path / "img")
    assert flip_idx_of(data) == (0, 2, 1)  # nose, left_eye, right_eye


def test_each_sample_is_flipped_with_probability_p_reproducibly() -> None:
    base = [(torch.arange(4.0).view(1, 1, 4), torch.tensor([[0, 1, 2, 3]])) for _ in range(400)]
    runs = [HorizontalFlip(base, 0.3, None, seed=5) for _ in range(2)]
    runs = [[bool(run[i][0][0, 0, 0] == 3) for i in range(400)] for run in runs]
    assert runs[0] == runs[1] and 0.22 < sum(runs[0]) / 400 < 0.38
    image, mask = HorizontalFlip(base, 1.0, None)[0]
    assert image.flatten().tolist() == [3, 2, 1, 0] and mask.tolist() == [[3, 2, 1, 0]]
