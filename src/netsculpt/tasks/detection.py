"""``detection``: torchvision's detector convention, its own losses, COCO mAP, head-output distillation.

A detector takes a list of ``(C, H, W)`` images; in training mode ``model(images, targets)`` returns a
dict of losses (summed here, as torchvision's reference training does), in eval mode a list of
``{"boxes", "scores", "labels"}``. Targets are dicts with ``boxes`` (x1, y1, x2, y2) and ``labels``.
That is what ``fasterrcnn_*``, ``retinanet_*``, ``fcos_*``, ``ssd*`` and ``maskrcnn_*`` all implement,
and what ``digits_detect`` and the COCO loader yield. The metric is COCO mAP@[.5:.95] (``map``) with
mAP@.5 (``map_50``), computed by pycocotools. A keypoint detector (``keypointrcnn_*``) on targets with
``keypoints`` is also scored by COCO's keypoint AP (``kp_map``, ``kp_map_50``; ``netsculpt.tasks.keypoints``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from torch import Tensor, nn

from netsculpt.errors import ConfigError, DataError
from netsculpt.tasks.base import Task, register_task
from netsculpt.tasks.metrics import DetectionMAP

_FIXED = (nn.modules.batchnorm._BatchNorm, nn.modules.dropout._DropoutNd, nn.GroupNorm, nn.LayerNorm)


@contextlib.contextmanager
def loss_mode(model: nn.Module) -> Iterator[None]:
    """Training mode for the detector's loss branch, eval mode for every BatchNorm and dropout.

    torchvision's detectors compute their loss only when ``model.training``; a gradient criterion must
    see that loss without the batch statistics of calibration images moving BatchNorm's running stats.
    """
    modes = {m: m.training for m in model.modules()}
    for m in model.modules():  # flags only: a class's own train() may mean "start training"
        m.training = not isinstance(m, _FIXED)
    try:
        yield
    finally:
        for m, mode in modes.items():
            m.training = mode


def _images(inputs: Any) -> list[Tensor]:
    if isinstance(inputs, Tensor):
        return list(inputs) if inputs.dim() == 4 else [inputs]
    if isinstance(inputs, list | tuple) and all(isinstance(x, Tensor) for x in inputs):
        return list(inputs)
    raise DataError(
        f"detection inputs must be a list of (C, H, W) images, got {type(inputs).__name__}; use "
        "collate_fn=get_task('detection').collate for the DataLoader"
    )


def _targets(targets: Any) -> list[dict[str, Tensor]]:
    if not isinstance(targets, list | tuple) or not all(isinstance(t, dict) for t in targets):
        raise DataError(
            "detection targets must be a list of dicts with 'boxes' (x1, y1, x2, y2) and 'labels', got "
            f"{type(targets).__name__}: a classification label per image is not a detection target"
        )
    for t in targets:
        if "boxes" not in t or "labels" not in t:
            raise DataError(f"a detection target needs 'boxes' and 'labels', got keys {sorted(t)}")
    return list(targets)


def _sum_losses(losses: Any, model: nn.Module) -> Tensor:
    if not isinstance(losses, dict) or not losses:
        raise DataError(
            f"{type(model).__name__} in training mode returned {type(losses).__name__}, not a dict of "
            "losses: the detection task expects torchvision's detector convention (model(images, targets))"
        )
    return sum(losses.values())  # type: ignore[return-value]


class _MAP:
    def __init__(self, kpt_sigmas: list[float] | None = None) -> None:
        self.map = DetectionMAP(kpt_sigmas=kpt_sigmas)

    def update(self, model: nn.Module, inputs: Any, targets: Any) -> None:
        predictions = model(_images(inputs))
        self.map.update(predictions, _targets(targets))

    def compute(self) -> dict[str, float]:
        return self.map.compute()


@register_task("detection")
class Detection(Task):
    metric = "map"
    per_image_labels = False
    distributed = False  # COCO mAP is not a sum over shards

    def __init__(
        self, num_classes: int | None = None, head: str = "head", kpt_sigmas: list[float] | None = None
    ) -> None:
        """``kpt_sigmas``: keypoint AP's per-keypoint OKS tolerance (default: COCO's for 17, else 1/K)."""
        self.num_classes, self.head, self.kpt_sigmas = num_classes, head, kpt_sigmas

    def collate(self, batch: list[Any]) -> tuple[list[Any], list[Any]]:
        images, targets = zip(*batch) if batch else ((), ())
        return list(images), list(targets)

    def batch_size(self, inputs: Any, targets: Any) -> int:
        return len(_images(inputs))

    def loss(self, model: nn.Module, inputs: Any, targets: Any) -> tuple[Tensor, Any]:
        losses = model(_images(inputs), _targets(targets))
        return _sum_losses(losses, model), losses

    def calibration_loss(self, model: nn.Module, inputs: Any, targets: Any) -> Tensor:
        with loss_mode(model):
            return self.loss(model, inputs, targets)[0]

    def evaluator(self) -> _MAP:
        return _MAP(self.kpt_sigmas)

    def head_module(self, model: nn.Module) -> nn.Module:
        """The module whose outputs distillation matches (``head`` of FCOS, RetinaNet, SSD)."""
        model = getattr(model, "module", model)
        modules = dict(model.named_modules())
        if self.head not in modules:
            raise ConfigError(
                f"detection distillation matches the outputs of {type(model).__name__}.{self.head}, which "
                f"this model has no module called; pass get_task('detection', head=NAME) with the module "
                "that returns the class logits and box regression (two-stage detectors such as Faster "
                "R-CNN sample proposals per run, so their heads cannot be matched: use alpha=0)"
            )
        return modules[self.head]

    def distillation_loss(self, teacher: nn.Module, config: Any, **hints: Any) -> Any:
        from netsculpt.tasks.distill import DenseDistillationLoss

        return DenseDistillationLoss(self, teacher, config, **hints)

    def soft_loss(self, student_out: Any, teacher_out: Any, temperature: float) -> Tensor:
        """Match every head output: sigmoid scores (class logits, centerness) by binary cross-entropy
        at temperature ``T`` (times ``T**2``), box regression by mean squared error."""
        from netsculpt.tasks.distill import match_head_outputs

        return match_head_outputs(student_out, teacher_out, temperature)
