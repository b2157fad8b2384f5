"""The push step of Grow-Push-Prune: a deep-LDA loss that separates classes in a layer's features and
decorrelates its channels, so the discriminants come to rest on a few neurons (which ``gpp`` then keeps).

For the pooled features ``h`` (N, C) of a batch, with within-class scatter ``Sw`` and between-class
scatter ``Sb``:

    push = -trace(Sb) / trace(Sw)  +  cov_weight * ||offdiag(Cov h)||_F^2 / ||diag(Cov h)||_2^2

Both terms are scale-free, so the weight means the same at any layer. The push loss alternates with the
task loss: one batch is a task step (cross-entropy), the next a push step (``push_weight * push`` plus the
cross-entropy scaled by ``task_in_push``, which keeps the task from drifting while features move).

With ``momentum`` > 0 the within-class scatter is measured around running class centroids (an
exponential average of the batch class means, no gradient) instead of the batch's own means: with many
classes and small batches a batch holds a handful of samples per class and its means are noise. The step
counter, the centroids and running averages of the two terms are the loss's state; the training loop
checkpoints them (``runtime_state`` / ``load_runtime_state``) so a resumed push phase is exact.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from netsculpt.errors import CheckpointError, ConfigError

MAX_CLASSES = 100_000


def _class_means(feats: Tensor, labels: Tensor, classes: int) -> tuple[Tensor, Tensor]:
    onehot = F.one_hot(labels, classes).to(feats.dtype)  # (N, K)
    counts = onehot.sum(0)
    return (onehot.T @ feats) / counts.clamp_min(1)[:, None], counts


def scatter_ratio_and_decorrelation(
    feats: Tensor, labels: Tensor, centroids: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """(-trace(Sb) / trace(Sw), normalised off-diagonal covariance) of pooled ``feats`` (N, C).

    ``centroids`` (K, C), if given, are the class centres the within-class scatter is measured around
    (running means); by default the batch's own class means."""
    n = feats.shape[0]
    mean = feats.mean(0)
    classes = int(labels.max()) + 1
    class_means, counts = _class_means(feats, labels, classes)
    between = (counts[:, None] * (class_means - mean).pow(2)).sum() / n
    centres = class_means if centroids is None else centroids
    within = (feats - centres[labels]).pow(2).sum() / n
    centred = feats - mean
    cov = centred.T @ centred / max(1, n - 1)
    diag = cov.diagonal()
    off = (cov.pow(2).sum() - diag.pow(2).sum()) / diag.pow(2).sum().clamp_min(1e-12)
    return -between / within.clamp_min(1e-12), off


class PushLoss:
    """A training loss (the loop's ``loss_fn``) alternating task and push steps on one layer."""

    def __init__(
        self, layer: str, *, push_weight: float = 0.1, cov_weight: float = 0.1, task_in_push: float = 1.0,
        momentum: float = 0.0,
    ):  # fmt: skip
        if not push_weight >= 0 or not cov_weight >= 0 or not task_in_push >= 0:
            raise ConfigError("push_weight, cov_weight and task_in_push must be >= 0")
        if not 0 <= momentum < 1:
            raise ConfigError(f"momentum must be in [0, 1) (0: batch class means), got {momentum!r}")
        self.layer, self.push_weight, self.cov_weight = layer, push_weight, cov_weight
        self.task_in_push, self.momentum = task_in_push, momentum
        self.step = 0
        self.centroids: Tensor | None = None  # (K, C) running class means, only with momentum > 0
        self.seen: Tensor | None = None  # (K,) bool: classes whose centroid has been initialised
        self.pushes = 0
        self.running: dict[str, float] = {"ratio": 0.0, "offdiag": 0.0}  # means over all push steps
        self.last: dict[str, float] = {}

    def recipe(self) -> dict[str, Any]:
        return {"loss": "gpp_push", "layer": self.layer, "push_weight": self.push_weight,
                "cov_weight": self.cov_weight, "task_in_push": self.task_in_push,
                "momentum": self.momentum}  # fmt: skip

    # -- checkpointed state -------------------------------------------------------------------------
    def runtime_state(self) -> dict[str, Any]:
        """Plain data and tensors (loads with ``weights_only=True``): step, centroids, running terms."""
        state: dict[str, Any] = {"step": self.step, "pushes": self.pushes, "running": dict(self.running)}
        if self.centroids is not None and self.seen is not None:
            state["centroids"], state["seen"] = self.centroids.detach().clone(), self.seen.clone()
        return state

    def load_runtime_state(self, state: dict[str, Any]) -> None:
        try:
            step, pushes, running = int(state["step"]), int(state["pushes"]), state["running"]
            running = {"ratio": float(running["ratio"]), "offdiag": float(running["offdiag"])}
            centroids, seen = state.get("centroids"), state.get("seen")
            if (centroids is None) != (seen is None) or (
                centroids is not None and (centroids.dim() != 2 or seen.shape != centroids.shape[:1])
            ):
                raise ValueError("centroids and seen do not match")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CheckpointError(
                f"the push loss state in the checkpoint is malformed ({exc}); start a new out_dir"
            ) from None
        self.step, self.pushes, self.running = step, pushes, running
        device = self.centroids.device if self.centroids is not None else None
        self.centroids = centroids.to(device) if centroids is not None else None
        self.seen = seen.to(device) if seen is not None else None

    def to(self, device: torch.device | str) -> PushLoss:
        if self.centroids is not None and self.seen is not None:
            self.centroids, self.seen = self.centroids.to(device), self.seen.to(device)
        return self

    # -- the loss -----------------------------------------------------------------------------------
    def _centroids(self, feats: Tensor, labels: Tensor) -> Tensor | None:
        """Update the running class means with this batch's and return them (None without momentum)."""
        if self.momentum == 0:
            return None
        classes = max(int(labels.max()) + 1, 0 if self.centroids is None else self.centroids.shape[0])
        if classes > MAX_CLASSES:
            raise ConfigError(f"push loss: label {classes - 1} is above the limit of {MAX_CLASSES} classes")
        width = feats.shape[1]
        if self.centroids is None or self.centroids.shape[1] != width:  # first batch, or the layer changed
            self.centroids = feats.new_zeros(classes, width).detach()
            self.seen = torch.zeros(classes, dtype=torch.bool, device=feats.device)
        elif self.centroids.shape[0] < classes:
            grow = classes - self.centroids.shape[0]
            self.centroids = F.pad(self.centroids, (0, 0, 0, grow))
            self.seen = F.pad(self.seen, (0, grow))
        assert self.seen is not None
        batch_means, counts = _class_means(feats.detach(), labels, classes)
        present = counts > 0
        fresh = present & ~self.seen
        old = present & self.seen
        m = self.momentum
        self.centroids[fresh] = batch_means[fresh].to(self.centroids.dtype)
        self.centroids[old] = m * self.centroids[old] + (1 - m) * batch_means[old].to(self.centroids.dtype)
        self.seen |= present
        return self.centroids.to(feats.dtype)

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
        ratio, off = scatter_ratio_and_decorrelation(feats, targets, self._centroids(feats, targets))
        push = ratio + self.cov_weight * off
        self.last = {"ce": float(ce.detach()), "ratio": float(ratio.detach()), "offdiag": float(off.detach())}
        self.pushes += 1
        for key in ("ratio", "offdiag"):
            self.running[key] += (self.last[key] - self.running[key]) / self.pushes
        return self.task_in_push * ce + self.push_weight * push, logits
