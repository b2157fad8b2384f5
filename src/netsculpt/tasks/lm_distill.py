"""Distilling a causal language model: Hinton's soft targets on every predicted token.

    loss = (1 - alpha) * next-token CE + alpha * T**2 * mean over counted tokens of
           KL(softmax(teacher_t / T) || softmax(student_t / T))   [+ hint_weight * feature hints]

The KL term is the classification one (``kd_loss``) with every counted position as a sample: the
teacher's distribution over the next token at each position the hard loss scores (padding and ``-100``
labels count in neither term).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from netsculpt.errors import ConfigError
from netsculpt.tasks.language_model import IGNORE, next_token_loss, run_lm, shifted
from netsculpt.train.distill import DistillConfig, TeacherLoss, kd_loss


class TokenDistillationLoss(TeacherLoss):
    """A :data:`netsculpt.train.LossFn` for the ``language_modeling`` task (teacher in eval mode, no grad)."""

    _who = "TokenDistillationLoss"

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
        self.task = task
        super().__init__(teacher, config, student=student, example_inputs=example_inputs, seed=seed)

    def recipe(self) -> dict[str, Any]:
        return {"loss": "distill-language_modeling", **self.config.to_dict(), "teacher": self.fingerprint}

    def __call__(self, model: nn.Module, inputs: Any, targets: Tensor) -> tuple[Tensor, Tensor]:
        alpha, hints = self.config.alpha, self.config.hints
        s_tap, t_tap = self._taps(model)
        with s_tap:
            logits = run_lm(model, inputs)
        hard = next_token_loss(logits, targets)
        if alpha == 0 and not hints:
            self.last_terms = {"ce": hard.detach()}
            return hard, logits
        with torch.no_grad(), t_tap:
            teacher_logits = run_lm(self._teacher(), inputs)
        if teacher_logits.shape != logits.shape:
            raise ConfigError(
                f"teacher logits {tuple(teacher_logits.shape)} and student logits {tuple(logits.shape)} "
                "differ; distil between language models with the same vocabulary"
            )
        terms = {"ce": hard}
        loss = (1.0 - alpha) * hard
        if alpha > 0:
            s_flat, target = shifted(logits, targets)
            t_flat, _ = shifted(teacher_logits, targets)
            counted = target != IGNORE
            if bool(counted.any()):
                terms["kd"] = kd_loss(s_flat[counted], t_flat[counted], self.config.temperature)
            else:
                terms["kd"] = logits.sum() * 0.0
            loss = loss + alpha * terms["kd"]
        return self._with_hints(loss, terms, s_tap, t_tap), logits

    def __repr__(self) -> str:
        c = self.config
        return f"TokenDistillationLoss(T={c.temperature}, alpha={c.alpha}, hints={len(c.hints)})"
