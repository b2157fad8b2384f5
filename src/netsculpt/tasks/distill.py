"""Distillation for the dense tasks: the student matches what the teacher's head predicts.

Classification keeps Hinton's soft targets (``train/distill.py``). For segmentation the same KL term is
taken per pixel. For detection the student matches the teacher's raw head outputs on every anchor /
location of every pyramid level, before box decoding and NMS (which are discontinuous): class logits and
centerness by binary cross-entropy against the teacher's sigmoid at temperature ``T`` (scaled by
``T**2`` like the KL term), box regression by mean squared error. A pruned detector keeps its anchors
and levels, so the outputs line up one to one.

    loss = (1 - alpha) * task loss + alpha * soft term  [+ hint_weight * feature hints]

Feature hints (``hints=["backbone.fpn.layer_blocks.0", ...]``) add FitNets-style matching of
intermediate features, e.g. the FPN's output convs level by level: a pruned student whose FPN lost
channels gets a learned 1x1 adapter per hint (trained with it, never saved with it), as for
classification (``train/hints.py``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from netsculpt.errors import ConfigError
from netsculpt.train.distill import DistillConfig, TeacherLoss


def _flatten(output: Any, prefix: str = "") -> dict[str, Tensor]:
    if isinstance(output, Tensor):
        return {prefix: output}
    if isinstance(output, dict):
        items = output.items()
    elif isinstance(output, list | tuple):
        items = ((str(i), v) for i, v in enumerate(output))
    else:
        return {}
    out: dict[str, Tensor] = {}
    for key, value in items:
        out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def match_head_outputs(student: Any, teacher: Any, temperature: float) -> Tensor:
    """Mean over the head's outputs of their matching terms (see the module docstring)."""
    s_out, t_out = _flatten(student), _flatten(teacher)
    if not s_out or set(s_out) != set(t_out):
        raise ConfigError(
            f"student head outputs {sorted(s_out)} and teacher head outputs {sorted(t_out)} differ; "
            "distil between detectors with the same head layout"
        )
    terms = []
    for key, s in s_out.items():
        t = t_out[key].detach()
        if s.shape != t.shape:
            raise ConfigError(f"head output {key!r}: student {tuple(s.shape)} vs teacher {tuple(t.shape)}")
        if "regression" in key:
            terms.append(F.mse_loss(s, t))
        else:
            soft = torch.sigmoid(t / temperature)
            terms.append(F.binary_cross_entropy_with_logits(s / temperature, soft) * temperature**2)
    return torch.stack(terms).mean()


class _Capture:
    """Forward hook keeping a module's last output (the head runs once per detector forward)."""

    def __init__(self, module: nn.Module | None) -> None:
        self.module, self.output, self.handle = module, None, None

    def __enter__(self) -> _Capture:
        if self.module is not None:
            self.handle = self.module.register_forward_hook(self._keep)
        return self

    def _keep(self, _module: nn.Module, _args: Any, output: Any) -> None:
        self.output = output

    def __exit__(self, *exc: Any) -> None:
        if self.handle is not None:
            self.handle.remove()


class DenseDistillationLoss(TeacherLoss):
    """A :data:`netsculpt.train.LossFn` for the ``detection`` and ``segmentation`` tasks."""

    def __init__(
        self,
        task: Any,
        teacher: nn.Module,
        config: DistillConfig | None = None,
        *,
        student: nn.Module | None = None,
        example_inputs: Any = None,
        seed: int = 0,
    ) -> None:
        config = config or DistillConfig()
        config.validate()
        if config.mixup:
            raise ConfigError(
                f"mixup is classification-only: mixing two canvases does not mix their {task.name} targets; "
                "set mixup=0"
            )
        self.task = task
        super().__init__(teacher, config, student=student, example_inputs=example_inputs, seed=seed)

    def recipe(self) -> dict[str, Any]:
        return {"loss": f"distill-{self.task.name}", **self.config.to_dict(), "teacher": self.fingerprint}

    def _head(self, model: nn.Module) -> nn.Module | None:
        """The module whose output the soft loss reads; only looked up when there is a soft loss
        (alpha > 0): a two-stage detector has no such head and distils by hints alone."""
        head_module = getattr(self.task, "head_module", None)
        if head_module is None or self.config.alpha == 0:
            return None
        return head_module(model)

    def __call__(self, model: nn.Module, inputs: Any, targets: Any) -> tuple[Tensor, Any]:
        alpha, temperature, hints = self.config.alpha, self.config.temperature, self.config.hints
        s_tap, t_tap = self._taps(model)
        with _Capture(self._head(model)) as s_cap, s_tap:
            hard, output = self.task.loss(model, inputs, targets)
        if alpha == 0 and not hints:
            self.last_terms = {"task": hard.detach()}
            return hard, output
        teacher = self._teacher()
        with torch.no_grad(), _Capture(self._head(teacher)) as t_cap, t_tap:
            teacher_out = teacher(inputs if not isinstance(inputs, tuple) else list(inputs))
        terms = {"task": hard}
        loss = (1.0 - alpha) * hard
        if alpha > 0:
            student_soft = s_cap.output if s_cap.module is not None else output
            teacher_soft = t_cap.output if t_cap.module is not None else teacher_out
            terms["soft"] = self.task.soft_loss(student_soft, teacher_soft, temperature)
            loss = loss + alpha * terms["soft"]
        return self._with_hints(loss, terms, s_tap, t_tap), output

    def __repr__(self) -> str:
        return (
            f"DenseDistillationLoss({self.task.name}, T={self.config.temperature}, alpha={self.config.alpha})"
        )
