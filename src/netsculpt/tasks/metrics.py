"""Evaluation metrics of the dense tasks: COCO box mAP (by pycocotools) and segmentation mIoU.

Both are accumulators: ``update`` once per batch, ``compute`` once at the end, so an evaluation pass
holds only the predictions' boxes (detection) or a ``classes x classes`` confusion matrix
(segmentation), never the images. COCO mAP is computed by the reference implementation (pycocotools'
``COCOeval``) rather than re-derived: its 101-point interpolation, area ranges and max-detections rule
are what published numbers mean by "mAP@[.5:.95]".
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from netsculpt.errors import DataError
from netsculpt.tasks.coco_eval import coco_ap, coco_box
from netsculpt.tasks.keypoints import KeypointAP

# how a person reads each metric key: the run summary, the report and the CLI's printouts say these
METRIC_LABELS = {
    "map": "mAP@[.5:.95]",
    "map_50": "mAP@.5",
    "kp_map": "keypoint AP@[.5:.95] (OKS)",
    "kp_map_50": "keypoint AP@.5 (OKS)",
    "miou": "mIoU",
    "token_accuracy": "next-token accuracy",
    "pixel_acc": "pixel accuracy",
}


def metric_label(metric: str) -> str:
    """The display name of a metric key (``"map"`` -> ``"mAP@[.5:.95]"``); unknown keys are shown as is."""
    return METRIC_LABELS.get(metric, metric)


def _xyxy(boxes: Any) -> np.ndarray:
    array = torch.as_tensor(boxes, dtype=torch.float64).reshape(-1, 4).cpu().numpy()
    return array


class DetectionMAP:
    """COCO mAP@[.5:.95] and mAP@.5 over predictions and targets in torchvision's convention.

    A prediction is ``{"boxes": (K, 4) x1y1x2y2, "scores": (K,), "labels": (K,)}``, a target
    ``{"boxes", "labels"}`` and, for COCO crowd regions, ``{"crowd_boxes", "crowd_labels"}`` (as COCO:
    a detection matched to one is ignored, neither a true nor a false positive). Images with no ground
    truth count (their detections are false positives). ``max_detections`` is COCO's per-image cap (100).
    When the targets carry ``keypoints`` (N, K, 3) and the model outputs ``keypoints``, keypoint AP by OKS
    is added (``kp_map``, ``kp_map_50``; ``kpt_sigmas``: see ``netsculpt.tasks.keypoints``).
    """

    def __init__(self, max_detections: int = 100, kpt_sigmas: list[float] | None = None) -> None:
        self.max_detections = max_detections
        self.keypoints = KeypointAP(kpt_sigmas)
        self.keypoint_truths = self.keypoint_model = False
        self.images: list[dict[str, Any]] = []
        self.truths: list[dict[str, Any]] = []
        self.detections: list[dict[str, Any]] = []
        self.labels: set[int] = set()

    def update(self, predictions: list[dict[str, Any]], targets: list[dict[str, Any]]) -> None:
        if len(predictions) != len(targets):
            raise DataError(f"got {len(predictions)} predictions for {len(targets)} targets")
        for pred, target in zip(predictions, targets):
            image_id = len(self.images) + 1
            self.images.append({"id": image_id})
            for crowd, boxes, labels in ((0, "boxes", "labels"), (1, "crowd_boxes", "crowd_labels")):
                if boxes not in target:
                    continue
                box_array, label_list = _xyxy(target[boxes]), torch.as_tensor(target[labels]).tolist()
                if "keypoints" in target:
                    self.keypoint_truths = True
                    if crowd:
                        self.keypoints.add_crowds(image_id, box_array, label_list)
                    else:
                        self.keypoints.add_truths(image_id, target, box_array, label_list)
                for box, label in zip(box_array, label_list):
                    bbox, area = coco_box(box)
                    self.labels.add(int(label))
                    self.truths.append({
                        "id": len(self.truths) + 1, "image_id": image_id, "category_id": int(label),
                        "bbox": bbox, "area": area, "iscrowd": crowd,
                    })  # fmt: skip
            if "keypoints" in pred:
                self.keypoint_model = True
                self.keypoints.add_detections(image_id, pred)
            scores = torch.as_tensor(pred["scores"]).reshape(-1).tolist()
            labels = torch.as_tensor(pred["labels"]).reshape(-1).tolist()
            for box, score, label in zip(_xyxy(pred["boxes"]), scores, labels):
                self.labels.add(int(label))
                self.detections.append({
                    "image_id": image_id, "category_id": int(label), "score": float(score),
                    "bbox": coco_box(box)[0],
                })  # fmt: skip

    def compute(self) -> dict[str, float]:
        """``{"map": mAP@[.5:.95], "map_50": mAP@.5}`` in [0, 1] (0 when nothing was detected), and
        ``kp_map`` / ``kp_map_50`` for a keypoint model on keypoint targets."""
        if not self.images:
            raise DataError("DetectionMAP.compute() before any update(): the evaluation saw no images")
        if not any(t["iscrowd"] == 0 for t in self.truths):
            raise DataError("the evaluation images hold no ground-truth boxes, so mAP is undefined")
        extra = self.keypoints.compute(self.images) if self.keypoint_truths and self.keypoint_model else {}
        if not self.detections:
            return {"map": 0.0, "map_50": 0.0, **extra}
        dataset = {
            "images": self.images,
            "annotations": self.truths,
            "categories": [{"id": c} for c in sorted(self.labels)],
        }
        ap, ap50 = coco_ap(dataset, self.detections, "bbox", maxDets=[1, 10, self.max_detections])
        return {"map": ap, "map_50": ap50, **extra}


class SegmentationIoU:
    """Mean intersection-over-union over classes from a running confusion matrix.

    ``update(logits or class map (N, H, W), target (N, H, W))``; pixels labelled ``ignore_index`` are
    skipped. Classes absent from both prediction and target on the whole set are left out of the mean
    (their IoU is 0/0), as torchvision's reference scripts and the VOC benchmark do.
    """

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        if num_classes < 2:
            raise DataError(f"segmentation needs at least 2 classes (background and one), got {num_classes}")
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        if prediction.dim() == target.dim() + 1:
            prediction = prediction.argmax(1)
        if prediction.shape != target.shape:
            raise DataError(
                f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ in shape"
            )
        keep = target != self.ignore_index
        truth, guess = target[keep].long().cpu(), prediction[keep].long().cpu()
        if truth.numel() and (int(truth.max()) >= self.num_classes or int(truth.min()) < 0):
            raise DataError(f"target holds class {int(truth.max())}, outside 0..{self.num_classes - 1}")
        self.confusion += torch.bincount(
            truth * self.num_classes + guess.clamp(0, self.num_classes - 1), minlength=self.num_classes**2
        ).reshape(self.num_classes, self.num_classes)

    def per_class(self) -> torch.Tensor:
        """IoU per class (NaN for a class seen in neither prediction nor target)."""
        c = self.confusion.double()
        inter = c.diag()
        union = c.sum(0) + c.sum(1) - inter
        return torch.where(union > 0, inter / union.clamp(min=1), torch.full_like(inter, float("nan")))

    def compute(self) -> dict[str, float]:
        if int(self.confusion.sum()) == 0:
            raise DataError("SegmentationIoU.compute() before any labelled pixel was seen")
        ious = self.per_class()
        pixel_acc = float(self.confusion.diag().sum()) / float(self.confusion.sum())
        return {"miou": float(ious[~ious.isnan()].mean()), "pixel_acc": pixel_acc}
