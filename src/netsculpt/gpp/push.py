"""The push step of Grow-Push-Prune: a deep-LDA loss that separates classes in a layer's features and
decorrelates its channels, so the discriminants come to rest on a few neurons (which ``gpp`` then keeps).

For the pooled features ``h`` (N, C) of a batch, with within-class scatter ``Sw`` and between-class
scatter ``Sb``:

    push = -trace(Sb) / trace(Sw)  +  cov_weight * ||offdiag(Cov h)||_F^2 / ||diag(Cov h)||_2^2

Both terms are scale-free, so the weight means the same at any layer. The push loss alternates with the
task loss: one batch is a task step (cross-entropy), the next a push step (``push_weight * push`` plus the
cross-entropy scaled by ``task_in_push``, which keeps the task from drifting while features move).
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from netsculpt.errors import ConfigError


def scatter_ratio_and_decorrelation(feats: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """(-trace(Sb) / trace(Sw), normalised off-diagonal covariance) of pooled ``feats`` (N, C)."""
    n = feats.shape[0]
    mean = feats.mean(0)
    classes = int(labels.max()) + 1
    onehot = F.one_hot(labels, classes).to(feats.dtype)  # (N, K)
    counts = onehot.sum(0)
    class_means = (onehot.T @ feats) / counts.clamp_min(1)[:, None]
    between = (counts[:, None] * (class_means - mean).pow(2)).sum() / n
    within = (feats - class_means[labels]).pow(2).sum() / n
    centred = feats - mean
    cov = centred.T @ centred / max(1, n - 1)
    diag = cov.diagonal()
    off = (cov.pow(2).sum() - diag.pow(2).sum()) / diag.pow(2).sum().clamp_min(1e-12)
    return -between / within.clamp_min(1e-12), off


class PushLoss:
    """A training loss (the loop's ``loss_fn``) alternating task and push steps on one layer."""

    def __init__(
        self, layer: str, *, push_weight: float = 0.1, cov_weight: float = 0.1, task_in_push: float = 1.0
    ):
        if not push_weight >= 0 or not cov_weight >= 0 or not task_in_push >= 0:
            raise ConfigError("push_weight, cov_weight and task_in_push must be >= 0")
        self.layer, self.push_weight, self.cov_weight, self.task_in_push = (
            layer,
            push_weight,
            cov_weight,
            task_in_push,
        )
        self.step = 0
        self.last: dict[str, float] = {}

    def recipe(self) -> dict[str, Any]:
        return {"loss": "gpp_push", "layer": self.layer, "push_weight": self.push_weight,
                "cov_weight": self.cov_weight, "task_in_push": self.task_in_push}  # fmt: skip

    def __call__(self, model: nn.Module, inputs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        module = dict(getattr(model, "module", model).named_modules()).get(self.layer)
        if module is None:
            raise ConfigError(f"the push layer {self.layer!r} is not a module of {type(model).__name__}")
        seen: list[Tensor] = []
        handle = module.register_forward_hook(lambda m, a, out: seen.append(out))
        try:
            logits = model(inputs)
        finally:
            handle.remove()
        ce = F.cross_entropy(logits, targets)
        pushing = self.step % 2 == 1
        self.step += 1
        if not pushing:
            return ce, logits
        feats = seen[0].reshape(seen[0].shape[0], seen[0].shape[1], -1).mean(-1)
        ratio, off = scatter_ratio_and_decorrelation(feats, targets)
        push = ratio + self.cov_weight * off
        self.last = {"ce": float(ce.detach()), "ratio": float(ratio.detach()), "offdiag": float(off.detach())}
        return self.task_in_push * ce + self.push_weight * push, logits
