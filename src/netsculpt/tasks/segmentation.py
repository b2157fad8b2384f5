"""``segmentation``: a class per pixel, pixel cross-entropy, mIoU, per-pixel soft targets.

The model returns ``(N, C, H, W)`` logits, or a dict with ``"out"`` as torchvision's segmenters do
(their ``"aux"`` head, when present, is added to the loss with weight 0.5 like torchvision's reference
training). Targets are ``(N, H, W)`` class maps; ``ignore_index`` pixels count nowhere.
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from netsculpt.errors import ConfigError, DataError
from netsculpt.tasks.base import Task, register_task
from netsculpt.tasks.metrics import SegmentationIoU

AUX_WEIGHT = 0.5  # torchvision's segmentation reference scripts weight the auxiliary head this way


def logits_of(output: Any) -> Tensor:
    """The main ``(N, C, H, W)`` map of a segmenter's output."""
    if isinstance(output, dict):
        if "out" not in output:
            raise DataError(f"a segmenter returning a dict needs an 'out' entry, got keys {sorted(output)}")
        output = output["out"]
    if not isinstance(output, Tensor) or output.dim() != 4:
        got = tuple(output.shape) if isinstance(output, Tensor) else type(output).__name__
        raise DataError(f"segmentation expects (N, classes, H, W) logits from the model, got {got}")
    return output


class _MeanIoU:
    def __init__(self, task: Segmentation) -> None:
        self.task, self.iou = task, None

    def update(self, model: nn.Module, inputs: Tensor, targets: Tensor) -> None:
        logits = logits_of(model(inputs))
        if self.iou is None:
            self.iou = SegmentationIoU(self.task.num_classes or logits.shape[1], self.task.ignore_index)
        self.iou.update(logits, targets)

    def compute(self) -> dict[str, float]:
        if self.iou is None:
            raise DataError("evaluate() got a loader that yielded no batches")
        return self.iou.compute()


@register_task("segmentation")
class Segmentation(Task):
    metric = "miou"
    per_image_labels = False
    distributed = False

    def __init__(self, num_classes: int | None = None, ignore_index: int = 255) -> None:
        self.num_classes, self.ignore_index = num_classes, ignore_index

    def loss(self, model: nn.Module, inputs: Any, targets: Any) -> tuple[Tensor, Any]:
        output = model(inputs)
        logits = logits_of(output)
        if logits.shape[-2:] != targets.shape[-2:]:
            raise DataError(
                f"logits {tuple(logits.shape)} and target maps {tuple(targets.shape)} differ in size"
            )
        loss = F.cross_entropy(logits, targets.long(), ignore_index=self.ignore_index)
        if isinstance(output, dict) and isinstance(output.get("aux"), Tensor):
            loss = loss + AUX_WEIGHT * F.cross_entropy(
                output["aux"], targets.long(), ignore_index=self.ignore_index
            )
        return loss, logits

    def evaluator(self) -> _MeanIoU:
        return _MeanIoU(self)

    def distillation_loss(self, teacher: nn.Module, config: Any, **hints: Any) -> Any:
        from netsculpt.tasks.distill import DenseDistillationLoss

        return DenseDistillationLoss(self, teacher, config, **hints)

    def soft_loss(self, student_out: Any, teacher_out: Any, temperature: float) -> Tensor:
        """Hinton's KD term per pixel: both maps flattened to (pixels, classes)."""
        from netsculpt.train.distill import kd_loss

        s, t = logits_of(student_out), logits_of(teacher_out)
        if s.shape != t.shape:
            raise ConfigError(f"teacher map {tuple(t.shape)} and student map {tuple(s.shape)} differ")
        flat = lambda x: x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])  # noqa: E731
        return kd_loss(flat(s), flat(t), temperature)
