"""Keypoint AP (COCO's OKS metric) beside a keypoint detector's box mAP, computed by pycocotools.

A pruned keypoint R-CNN can keep its boxes and lose its joints; box mAP alone never shows that. COCO
scores keypoints by object keypoint similarity (OKS): per keypoint ``exp(-d^2 / (2 s^2 k^2))`` with
``s^2`` the object's area and ``k = 2 sigma`` a per-keypoint tolerance, averaged over the keypoints
labelled visible (``v > 0``); AP then runs over OKS thresholds .50:.95 as box AP runs over IoU. As for
boxes, the reference implementation (``COCOeval(iouType="keypoints")``) computes it.

Sigmas: ``kpt_sigmas`` when given (one per keypoint), else COCO's 17 person sigmas when there are 17
keypoints, else ``1/K`` each, as ultralytics does for a dataset without ``kpt_oks_sigmas``. The area is the
target's ``area`` when it has one (COCO files: the annotation's mask area, as COCO scores it), else
0.53 x the ground-truth box's (YOLO labels carry no mask area; 0.53 is the person-mask share of the box
that xtcocotools and ultralytics' pose validation use, so the figure compares with theirs; the whole box
area made OKS more lenient before 2026-12-07). A detection's score is its box score, as torchvision's COCO
evaluation submits it (``keypoints_scores`` are not used).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from netsculpt.errors import DataError
from netsculpt.tasks.coco_eval import coco_ap, coco_box

# COCO's person keypoints (nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles): pycocotools'
# own defaults, the spread of human annotators' clicks on each joint
COCO_SIGMAS = (0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87,
               0.89, 0.89)  # fmt: skip
COCO_SIGMAS = tuple(s / 10 for s in COCO_SIGMAS)
BOX_AREA_SHARE = 0.53  # a person's mask area / box area (xtcocotools, ultralytics' pose validation)


def keypoint_sigmas(count: int, given: Sequence[float] | None = None) -> np.ndarray:
    """The OKS sigma of each of ``count`` keypoints (see the module docstring for the defaults)."""
    if given is not None:
        sigmas = np.asarray(list(given), dtype=np.float64).reshape(-1)
        if len(sigmas) != count or not (np.isfinite(sigmas) & (sigmas > 0)).all():
            raise DataError(
                f"kpt_sigmas lists {len(sigmas)} value(s) {list(given)[:5]}, but the keypoints have {count}: "
                f"give one positive sigma per keypoint (COCO's person joints use 0.025..0.107)"
            )
        return sigmas
    return np.array(COCO_SIGMAS) if count == 17 else np.full(count, 1.0 / count)


def _flat(points: Any) -> list[list[float]]:
    """``(N, K, 3)`` keypoints as N COCO lists ``[x1, y1, v1, x2, ...]``."""
    array = torch.as_tensor(points, dtype=torch.float64).cpu()
    if array.dim() != 3 or array.shape[-1] not in (2, 3):
        raise DataError(f"keypoints must be (N, K, 3) x, y, visibility; got shape {tuple(array.shape)}")
    if array.shape[-1] == 2:  # a prediction without visibility: every keypoint is placed
        array = torch.cat([array, torch.ones(*array.shape[:2], 1, dtype=array.dtype)], dim=-1)
    return array.reshape(array.shape[0], array.shape[1] * 3).tolist()  # (0, K, 3) too: no -1


def _areas(target: dict[str, Any], boxes: np.ndarray) -> list[float]:
    """Each object's OKS scale ``s^2``: the target's ``area`` (a COCO annotation's mask area), else
    ``BOX_AREA_SHARE`` of its box's area (see the module docstring)."""
    if "area" in target:
        areas = torch.as_tensor(target["area"], dtype=torch.float64).reshape(-1)
        if len(areas) != len(boxes) or not bool((torch.isfinite(areas) & (areas >= 0)).all()):
            raise DataError(
                f"a target's 'area' must hold one non-negative area per box ({len(boxes)}); got "
                f"{areas.tolist()[:5]}: drop it to use {BOX_AREA_SHARE} x the box area"
            )
        return areas.tolist()
    return [BOX_AREA_SHARE * coco_box(box)[1] for box in boxes]


class KeypointAP:
    """COCO keypoint AP@[.5:.95] (``kp_map``) and AP@.5 (``kp_map_50``) over OKS, fed image by image."""

    def __init__(self, sigmas: Sequence[float] | None = None) -> None:
        self.sigmas = sigmas
        self.truths: list[dict[str, Any]] = []
        self.detections: list[dict[str, Any]] = []
        self.count: int | None = None  # keypoints per object, from the first ground truth seen

    def _check_count(self, rows: list[list[float]]) -> None:
        for row in rows:
            if self.count is None:
                self.count = len(row) // 3
            elif len(row) != 3 * self.count:
                raise DataError(f"keypoints per object changed from {self.count} to {len(row) // 3}")

    def add_truths(self, image_id: int, target: dict[str, Any], boxes: np.ndarray, labels: list[int]) -> None:
        rows = _flat(target["keypoints"])
        if len(rows) != len(labels):
            raise DataError(f"a target has {len(labels)} boxes but keypoints for {len(rows)} objects")
        self._check_count(rows)
        areas = _areas(target, boxes)
        for row, box, label, area in zip(rows, boxes, labels, areas):
            bbox = coco_box(box)[0]
            self.truths.append({
                "id": len(self.truths) + 1, "image_id": image_id, "category_id": int(label), "iscrowd": 0,
                "bbox": bbox, "area": area, "keypoints": row,
                "num_keypoints": int(sum(1 for v in row[2::3] if v > 0)),
            })  # fmt: skip

    def add_crowds(self, image_id: int, boxes: np.ndarray, labels: list[int]) -> None:
        """COCO crowd regions, with no keypoints: a detection matched to one is ignored, as for boxes."""
        for box, label in zip(boxes, labels):
            bbox, area = coco_box(box)
            self.truths.append({
                "id": len(self.truths) + 1, "image_id": image_id, "category_id": int(label), "iscrowd": 1,
                "bbox": bbox, "area": area, "keypoints": [], "num_keypoints": 0,
            })  # fmt: skip

    def add_detections(self, image_id: int, prediction: dict[str, Any]) -> None:
        rows = _flat(prediction["keypoints"])
        scores = torch.as_tensor(prediction["scores"]).reshape(-1).tolist()
        labels = torch.as_tensor(prediction["labels"]).reshape(-1).tolist()
        for row, score, label in zip(rows, scores, labels):
            self.detections.append(
                {"image_id": image_id, "category_id": int(label), "score": float(score), "keypoints": row}
            )

    def compute(self, images: list[dict[str, Any]]) -> dict[str, float]:
        if not any(t["num_keypoints"] > 0 for t in self.truths) or self.count is None:
            raise DataError(
                "the evaluation images hold no visible ground-truth keypoints (every v is 0), so keypoint AP "
                "is undefined: check the test split's keypoint labels"
            )
        sigmas = keypoint_sigmas(self.count, self.sigmas)
        for truth in self.truths:  # crowds seen before the first keypoints: zeros of the right length
            truth["keypoints"] = truth["keypoints"] or [0.0] * (3 * self.count)
        if self.detections and len(self.detections[0]["keypoints"]) != 3 * self.count:
            predicted = len(self.detections[0]["keypoints"]) // 3
            raise DataError(
                f"the model predicts {predicted} keypoints per object but the targets have {self.count}: "
                f"build the model with num_keypoints={self.count}"
            )
        if not self.detections:
            return {"kp_map": 0.0, "kp_map_50": 0.0}
        dataset = {
            "images": images,
            "annotations": self.truths,
            "categories": [{"id": c} for c in sorted({t["category_id"] for t in self.truths})],
        }
        ap, ap50 = coco_ap(dataset, self.detections, "keypoints", kpt_oks_sigmas=sigmas)
        return {"kp_map": ap, "kp_map_50": ap50}
