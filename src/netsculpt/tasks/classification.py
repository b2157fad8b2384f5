"""``classification``: one label per image, cross-entropy, top-1 accuracy, Hinton's soft targets.

This is what netsculpt assumed everywhere before tasks existed; the train loop keeps its own code path
for it (bit-identical histories and checkpoints), and this class gives the same loss and metric to the
parts that ask a task.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from netsculpt.errors import DataError
from netsculpt.tasks.base import Task, register_task


class _Accuracy:
    def __init__(self, task: Classification) -> None:
        self.task, self.correct, self.seen, self.loss_sum = task, 0, 0, 0.0

    def update(self, model: nn.Module, inputs: Tensor, targets: Tensor) -> None:
        from netsculpt.train.evaluate import count_correct

        loss, logits = self.task.loss(model, inputs, targets)
        n = int(targets.shape[0])
        self.correct += count_correct(logits, targets)
        self.loss_sum += float(loss) * n
        self.seen += n

    def compute(self) -> dict[str, float]:
        if self.seen == 0:
            raise DataError(
                "evaluate() got a loader that yielded no samples; check the dataset split and limit"
            )
        return {"accuracy": self.correct / self.seen, "loss": self.loss_sum / self.seen}


@register_task("classification")
class Classification(Task):
    """``model(images) -> (N, classes)`` logits; targets are class indices (or soft targets)."""

    def __init__(self, label_smoothing: float = 0.0, num_classes: int | None = None) -> None:
        self.label_smoothing = label_smoothing

    def loss(self, model: nn.Module, inputs: Any, targets: Any) -> tuple[Tensor, Any]:
        from netsculpt.train.losses import CrossEntropy

        return CrossEntropy(self.label_smoothing)(model, inputs, targets)

    def calibration_loss(self, model: nn.Module, inputs: Any, targets: Any) -> Tensor:
        from netsculpt.importance.calib_checks import check_logits
        from netsculpt.logits import logits_of

        output = logits_of(model(inputs))
        check_logits(output, targets)  # a tuple output or a bad label: say so, not a torch TypeError
        return torch.nn.functional.cross_entropy(output, targets)

    def evaluator(self) -> _Accuracy:
        return _Accuracy(self)

    def distillation_loss(self, teacher: nn.Module, config: Any, **hints: Any) -> Any:
        from netsculpt.train.distill import DistillationLoss

        return DistillationLoss(teacher, config, label_smoothing=self.label_smoothing, **hints)
