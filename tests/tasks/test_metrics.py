"""COCO mAP and mIoU on cases small enough to work out by hand."""

from __future__ import annotations

import pytest
import torch

from netsculpt.errors import DataError
from netsculpt.tasks import DetectionMAP, SegmentationIoU


def _t(boxes, labels):
    return {"boxes": torch.as_tensor(boxes, dtype=torch.float32), "labels": torch.as_tensor(labels)}


def _p(boxes, scores, labels):
    return {**_t(boxes, labels), "scores": torch.as_tensor(scores)}


def test_perfect_detections_score_one():
    m = DetectionMAP()
    m.update(
        [_p([[0, 0, 10, 10], [20, 20, 50, 40]], [0.9, 0.8], [1, 2])],
        [_t([[0, 0, 10, 10], [20, 20, 50, 40]], [1, 2])],
    )
    assert m.compute() == pytest.approx({"map": 1.0, "map_50": 1.0})


def test_iou_072_counts_at_five_of_ten_thresholds():
    # IoU of [0,0,10,7.2] with [0,0,10,10] is 0.72: a hit at thresholds .50 .55 .60 .65 .70, a miss above
    m = DetectionMAP()
    m.update([_p([[0, 0, 10, 7.2]], [0.9], [3])], [_t([[0, 0, 10, 10]], [3])])
    assert m.compute() == pytest.approx({"map": 0.5, "map_50": 1.0})


def test_false_positive_ranked_first_halves_precision():
    # one class, two images: image 1's box is missed and a confident false positive sits elsewhere on it;
    # image 2's box is found. Ranked: FP (0.9), TP (0.8) -> recall tops out at 1/2 with precision 1/2, so
    # the 101-point interpolated AP is 0.5 at the 51 recall levels 0, .01, ..., .5 and 0 above.
    m = DetectionMAP()
    m.update(
        [_p([[60, 60, 70, 70]], [0.9], [1]), _p([[0, 0, 10, 10]], [0.8], [1])],
        [_t([[0, 0, 10, 10]], [1]), _t([[0, 0, 10, 10]], [1])],
    )
    result = m.compute()
    assert result["map_50"] == pytest.approx(0.5 * 51 / 101, abs=1e-6)


def test_wrong_class_and_no_detections_score_zero():
    m = DetectionMAP()
    m.update([_p([[0, 0, 10, 10]], [0.9], [2])], [_t([[0, 0, 10, 10]], [1])])
    assert m.compute()["map_50"] == 0.0
    empty = DetectionMAP()
    empty.update([_p(torch.zeros(0, 4), [], [])], [_t([[0, 0, 10, 10]], [1])])
    assert empty.compute() == {"map": 0.0, "map_50": 0.0}


def test_detection_map_refuses_mismatched_and_empty_input():
    with pytest.raises(DataError, match="predictions"):
        DetectionMAP().update([], [_t([[0, 0, 1, 1]], [1])])
    with pytest.raises(DataError, match="no images"):
        DetectionMAP().compute()


def test_miou_by_hand():
    # class 0: 1 px shared of 2 -> 1/2; class 1: 2 shared of 3 -> 2/3; class 2 absent everywhere: left out
    iou = SegmentationIoU(3)
    iou.update(torch.tensor([[[0, 1], [0, 1]]]), torch.tensor([[[0, 1], [1, 1]]]))
    result = iou.compute()
    assert result["miou"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert result["pixel_acc"] == pytest.approx(3 / 4)


def test_miou_takes_logits_and_skips_ignored_pixels():
    logits = torch.zeros(1, 2, 1, 2)
    logits[0, 1, 0, 0] = 5.0  # argmax: [[1, 0]]
    iou = SegmentationIoU(2)
    iou.update(logits, torch.tensor([[[1, 255]]]))
    assert iou.compute()["miou"] == pytest.approx(1.0)  # only the labelled pixel counts, and it is right


def test_miou_refuses_out_of_range_classes():
    with pytest.raises(DataError, match="outside"):
        SegmentationIoU(2).update(torch.zeros(1, 1, 1, dtype=torch.long), torch.full((1, 1, 1), 5))


def test_a_detection_on_a_crowd_region_is_ignored_as_pycocotools_does():
    """Crowd regions were dropped, so a detection on one was a false positive ranked first: mAP 0.5
    where pycocotools gives 1.0 on the same file."""
    target = {**_t([[2, 2, 22, 22]], [1]), "crowd_boxes": torch.tensor([[30.0, 30, 60, 60]]),
              "crowd_labels": torch.tensor([1])}  # fmt: skip
    m = DetectionMAP()
    m.update([_p([[30, 30, 60, 60], [2, 2, 22, 22]], [0.9, 0.8], [1, 1])], [target])
    assert m.compute() == pytest.approx({"map": 1.0, "map_50": 1.0})
    only_crowd = DetectionMAP()
    only_crowd.update([_p([[30, 30, 60, 60]], [0.9], [1])], [{**target, **_t([], [])}])
    with pytest.raises(DataError, match="no ground-truth boxes"):
        only_crowd.compute()
