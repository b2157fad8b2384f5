"""The pycocotools evaluation box mAP and keypoint AP both run, and COCO's box form they both feed it.

COCOeval is the reference: its 101-point interpolation, area ranges and max-detections rule are what
published numbers mean by AP@[.5:.95]. It is run the same way for boxes and keypoints; only the iou type
and one parameter differ (the detections cap, the keypoints' OKS sigmas).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterable
from typing import Any


def coco_box(box: Iterable[float]) -> tuple[list[float], float]:
    """An ``x1, y1, x2, y2`` box as COCO's ``[x, y, width, height]`` and its area (0 when degenerate)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    w, h = max(x2 - x1, 0.0), max(y2 - y1, 0.0)
    return [x1, y1, w, h], w * h


def coco_ap(
    dataset: dict[str, Any], detections: list[dict[str, Any]], iou_type: str, **params: Any
) -> tuple[float, float]:
    """COCOeval's AP@[.5:.95] and AP@.5 (each >= 0: it writes -1 where nothing is defined) of
    ``detections`` on a COCO ``dataset`` dict; ``params`` set on ``COCOeval.params`` first."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    truth = COCO()
    truth.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress lines
        truth.createIndex()
        found = truth.loadRes(detections)
        evaluator = COCOeval(truth, found, iouType=iou_type)
        for name, value in params.items():
            setattr(evaluator.params, name, value)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = evaluator.stats
    return max(float(stats[0]), 0.0), max(float(stats[1]), 0.0)
