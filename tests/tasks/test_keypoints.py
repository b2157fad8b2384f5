"""Keypoint AP (OKS) beside box mAP, on cases worked out by hand and against pycocotools called directly."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from netsculpt.errors import DataError
from netsculpt.tasks import DetectionMAP, get_task

BOX = [0.0, 0.0, 100.0, 100.0]  # area 10,000: the OKS scale s^2 is 0.53 x that (ultralytics, xtcocotools)
SCALE = 0.53 * 10_000
POINTS = [[20.0, 30.0, 2.0], [50.0, 50.0, 2.0], [80.0, 30.0, 1.0]]


def _target(points, boxes=(BOX,)):
    return {"boxes": torch.tensor(boxes), "labels": torch.ones(len(boxes), dtype=torch.int64),
            "keypoints": torch.tensor(points)}  # fmt: skip


def _pred(points, scores=(0.9,), boxes=(BOX,)):
    return {"boxes": torch.tensor(boxes), "labels": torch.ones(len(boxes), dtype=torch.int64),
            "scores": torch.tensor(scores), "keypoints": torch.tensor(points),
            "keypoints_scores": torch.ones(len(boxes), len(points[0]))}  # fmt: skip


def _score(preds, targets, **kw):
    m = DetectionMAP(**kw)
    m.update(preds, targets)
    return m.compute()


def test_exact_keypoints_score_one_beside_box_map():
    nothing = {
        "boxes": torch.zeros(0, 4),
        "labels": torch.zeros(0, dtype=torch.int64),
        "keypoints": torch.zeros(0, 3, 3),
    }  # fmt: skip  (an image with no one on it, none found)
    empty = {**nothing, "scores": torch.zeros(0)}
    result = _score([_pred([POINTS]), empty], [_target([POINTS]), nothing])
    assert result == pytest.approx({"map": 1.0, "map_50": 1.0, "kp_map": 1.0, "kp_map_50": 1.0})


def test_shifted_keypoints_hit_five_of_ten_oks_thresholds():
    # 3 keypoints, no sigmas given: 1/3 each, so k = 2/3 and OKS = exp(-d^2 / (2 * s^2 * 4/9)) for a
    # shift d of every keypoint. d chosen for OKS 0.72: a hit at thresholds .50 .. .70, a miss above
    d = math.sqrt(-math.log(0.72) * 2 * SCALE * 4 / 9)
    shifted = [[x + d, y, v] for x, y, v in POINTS]
    result = _score([_pred([shifted])], [_target([POINTS])])
    assert result["map"] == pytest.approx(1.0)  # the boxes did not move
    assert result["kp_map"] == pytest.approx(0.5) and result["kp_map_50"] == pytest.approx(1.0)


def test_unlabelled_keypoints_are_ignored():
    hidden = [POINTS[0], POINTS[1], [0.0, 0.0, 0.0]]  # keypoint 3 not labelled (v = 0)
    anywhere = [POINTS[0], POINTS[1], [99.0, 99.0, 1.0]]
    assert _score([_pred([anywhere])], [_target([hidden])])["kp_map"] == pytest.approx(1.0)
    labelled = [POINTS[0], POINTS[1], [10.0, 90.0, 2.0]]  # the same guess on a labelled keypoint costs AP
    assert _score([_pred([anywhere])], [_target([labelled])])["kp_map"] < 0.9


def test_matches_pycocotools_on_the_same_json(tmp_path):
    # 17 keypoints with no sigmas given: COCO's, which pycocotools uses when not told otherwise
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from netsculpt.tasks.keypoints import COCO_SIGMAS

    rng = np.random.default_rng(0)
    truth = rng.uniform(10, 90, (2, 17, 3))
    truth[..., 2] = rng.integers(0, 3, (2, 17))
    guess = truth.copy()
    guess[..., :2] += rng.normal(0, 4, (2, 17, 2))
    guess[..., 2] = 1
    boxes = [BOX, [0.0, 0.0, 60.0, 80.0]]
    preds = [_pred(guess[:1].tolist()), _pred(guess[1:].tolist(), scores=(0.6,), boxes=boxes[1:])]
    targets = [_target(truth[:1].tolist()), _target(truth[1:].tolist(), boxes=boxes[1:])]
    ours = _score(preds, targets)

    annotations = [
        {"id": i + 1, "image_id": i + 1, "category_id": 1, "iscrowd": 0, "area": 0.53 * b[2] * b[3],
         "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]], "keypoints": truth[i].reshape(-1).tolist(),
         "num_keypoints": int((truth[i, :, 2] > 0).sum())}
        for i, b in enumerate(boxes)
    ]  # fmt: skip
    dataset = {"images": [{"id": 1}, {"id": 2}], "annotations": annotations, "categories": [{"id": 1}]}
    (tmp_path / "truth.json").write_text(json.dumps(dataset))
    results = [{"image_id": i + 1, "category_id": 1, "score": s, "keypoints": guess[i].reshape(-1).tolist()}
               for i, s in enumerate((0.9, 0.6))]  # fmt: skip
    coco = COCO(str(tmp_path / "truth.json"))
    evaluator = COCOeval(coco, coco.loadRes(results), iouType="keypoints")
    np.testing.assert_allclose(evaluator.params.kpt_oks_sigmas, COCO_SIGMAS)
    evaluator.evaluate(), evaluator.accumulate(), evaluator.summarize()
    assert 0 < ours["kp_map"] < 1
    assert ours["kp_map"] == pytest.approx(evaluator.stats[0])
    assert ours["kp_map_50"] == pytest.approx(evaluator.stats[1])


def test_a_targets_area_is_the_oks_scale():
    # COCO files carry each person's mask area: with it as s^2 the same shift scores as COCO scores it
    d = math.sqrt(-math.log(0.72) * 2 * SCALE * 4 / 9)  # OKS 0.72 at 0.53 x the box area (above)
    shifted = [[x + d, y, v] for x, y, v in POINTS]
    for area, hits in ((SCALE, 5), (10_000.0, 7), (2_000.0, 0)):
        # OKS at s^2 = area is 0.72 ** (SCALE / area): 0.72, 0.84 (hits .50 .. .80) and 0.42 (no hit)
        target = {**_target([POINTS]), "area": torch.tensor([area])}
        assert _score([_pred([shifted])], [target])["kp_map"] == pytest.approx(hits / 10)
    with pytest.raises(DataError, match="one non-negative area per box"):
        _score([_pred([shifted])], [{**_target([POINTS]), "area": torch.tensor([1.0, 2.0])}])


def test_kpt_sigmas_set_the_tolerance_and_are_checked():
    d = 10.0
    shifted = [[x + d, y, v] for x, y, v in POINTS]
    loose = _score([_pred([shifted])], [_target([POINTS])], kpt_sigmas=[1.0, 1.0, 1.0])
    tight = _score([_pred([shifted])], [_target([POINTS])], kpt_sigmas=[0.01, 0.01, 0.01])
    assert loose["kp_map"] == pytest.approx(1.0) and tight["kp_map"] == pytest.approx(0.0)
    with pytest.raises(DataError, match="one positive sigma per keypoint"):
        _score([_pred([shifted])], [_target([POINTS])], kpt_sigmas=[0.1] * 17)


def test_no_keypoint_metrics_without_a_keypoint_model():
    boxes_only = {k: v for k, v in _pred([POINTS]).items() if not k.startswith("keypoints")}
    assert set(_score([boxes_only], [_target([POINTS])])) == {"map", "map_50"}


class _Echo(nn.Module):
    """A keypoint detector that returns the given predictions, one per image (the metric is under test)."""

    def __init__(self, predictions):
        super().__init__()
        self.predictions = predictions

    def forward(self, images):
        return self.predictions[: len(images)]


def test_detection_task_reports_keypoint_ap():
    d = math.sqrt(-math.log(0.72) * 2 * SCALE * 4 / 9)
    shifted = [[x + d, y, v] for x, y, v in POINTS]
    batch = [(torch.zeros(3, 8, 8), _target([POINTS]))]
    task = get_task("detection")
    scores = task.evaluate(_Echo([_pred([shifted])]), [task.collate(batch)])
    assert scores["kp_map"] == pytest.approx(0.5) and scores["map"] == pytest.approx(1.0)


def test_a_keypoint_rcnn_on_coco_keypoint_files_is_scored_by_both_metrics(tmp_path):
    """torchvision's KeypointRCNN (tiny backbone and heads) on the COCO reader's keypoints: its real
    outputs (keypoints (N, K, 3), keypoints_scores) go through the task's evaluation to both metrics."""
    from torchvision.models.detection import KeypointRCNN
    from torchvision.models.detection.keypoint_rcnn import KeypointRCNNHeads, KeypointRCNNPredictor
    from torchvision.models.detection.rpn import AnchorGenerator

    from netsculpt.data.coco import CocoDetection
    from tests.data.test_coco import _write_keypoints

    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Conv2d(3, 8, 3, stride=4, padding=1), nn.ReLU())
    backbone.out_channels = 8  # type: ignore[assignment]
    model = KeypointRCNN(backbone, num_classes=3, min_size=20, max_size=40, box_score_thresh=0.0,
                         rpn_anchor_generator=AnchorGenerator(((16, 32),), ((1.0, 2.0),)),
                         keypoint_head=KeypointRCNNHeads(8, (16,)),
                         keypoint_predictor=KeypointRCNNPredictor(16, 3))  # fmt: skip
    data = CocoDetection(_write_keypoints(tmp_path, [5, 4, 2, 4, 3, 1, 0, 0, 0]), tmp_path / "img")
    task = get_task("detection")
    scores = task.evaluate(model, [task.collate([data[0], data[1]])])
    assert set(scores) == {"map", "map_50", "kp_map", "kp_map_50"}
    assert all(0 <= v <= 1 for v in scores.values())
