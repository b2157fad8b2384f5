"""The push step of Grow-Push-Prune: a deep-LDA loss that separates classes in a layer's features and
decorrelates its channels, so the discriminants come to rest on a few neurons (which ``gpp`` then keeps).

For the pooled features ``h`` (N, C) of a batch, with within-class scatter ``Sw`` and between-class
scatter ``Sb``:

    push = -trace(Sb) / trace(Sw)  +  cov_weight * ||offdiag(Cov h)||_F^2 / ||diag(Cov h)||_2^2
           -  sparse_weight * ||f||_2 / ||f||_1,     f_c = Sb_cc / Sw_cc (each channel's Fisher ratio)

All terms are scale-free, so the weights mean the same at any layer. The last (off by default, not in
the paper) rewards separation that sits on few channels: ||f||_2 / ||f||_1 runs from 1/sqrt(C), every
channel equally discriminative, to 1, one channel carrying it all. The push loss alternates with the
task loss: one batch is a task step (cross-entropy), the next a push step (``push_weight * push`` plus the
cross-entropy scaled by ``task_in_push``, which keeps the task from drifting while features move).

With ``momentum`` > 0 the within-class scatter is measured around running class centroids (an
exponential average of the batch class means, no gradient) instead of the batch's own means: with many
classes and small batches a batch holds a handful of samples per class and its means are noise. The step
counter, the centroids and running averages of the two terms are the loss's state; the training loop
checkpoints them (``runtime_state`` / ``load_runtime_state``) so a resumed push phase is exact.

The trace ratio above separates classes over *all* channels at once and so does not, by itself, move the
separation onto few of them (measured on LeNet-5: the share of the gpp scores held by the 2 and 3 kept
channels was the same after it as after plain cross-entropy). ``keep={layer: k}`` makes the push aim at
the compact set pruning will keep, the paper's "push deep discriminants into alignment with a compact
set of neurons": the set ``S`` is the ``k`` channels with the highest gpp scores (the mean of the
first 5 push batches' scores, no gradient, then fixed: the channels that already discriminate
best), and for that layer the push term becomes

    -trace((Sw_S + r diag St_S)^-1 Sb_S) / k  +  cov_weight * offdiag  +  rest_weight * E_rest / E

the LDA eigen-objective (the sum of the generalised eigenvalues of Sb v = lambda Sw v) of the kept
channels' pooled features, the covariance penalty, and the share of the layer's activation energy
(mean square over the whole map) held by the channels outside ``S``: driving that share down makes the
other channels' removal cheap, while the task loss moves what they carried into ``S``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from netsculpt.errors import CheckpointError, ConfigError
from netsculpt.importance.gpp import lda_channel_scores, per_channel, pooled

MAX_CLASSES = 100_000
SELECT_PUSHES = 5  # push batches whose gpp scores choose the kept set


def _class_means(feats: Tensor, labels: Tensor, classes: int) -> tuple[Tensor, Tensor]:
    onehot = F.one_hot(labels, classes).to(feats.dtype)  # (N, K)
    counts = onehot.sum(0)
    return (onehot.T @ feats) / counts.clamp_min(1)[:, None], counts


def channel_fisher(feats: Tensor, labels: Tensor, centroids: Tensor | None = None) -> Tensor:
    """Each channel's Fisher ratio between_c / within_c of pooled ``feats`` (N, C): unit-free."""
    classes = int(labels.max()) + 1
    class_means, counts = _class_means(feats, labels, classes)
    between = (counts[:, None] * (class_means - feats.mean(0)).pow(2)).sum(0) / feats.shape[0]
    centres = class_means if centroids is None else centroids
    within = (feats - centres[labels]).pow(2).mean(0)
    return between / (within + 1e-6 * within.mean().detach() + 1e-12)


def fisher_concentration(feats: Tensor, labels: Tensor, centroids: Tensor | None = None) -> Tensor:
    """||f||_2 / ||f||_1 of the per-channel Fisher ratios f_c = between_c / within_c of ``feats`` (N, C)."""
    fisher = channel_fisher(feats, labels, centroids)
    return fisher.norm() / fisher.sum().clamp_min(1e-12)


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


def kept_eigen_objective(feats: Tensor, labels: Tensor, ridge: float = 1e-2) -> Tensor:
    """trace((Sw + ridge diag St)^-1 Sb) / C of ``feats`` (N, C): the LDA eigen-objective, invariant to any
    invertible linear map of the channels; the ridge (relative to each channel's total variance) bounds it."""
    n, c = feats.shape
    classes = int(labels.max()) + 1
    class_means, counts = _class_means(feats, labels, classes)
    mean = feats.mean(0)
    centred_means = (class_means - mean) * counts.sqrt()[:, None]
    sb = centred_means.T @ centred_means / n
    centred = feats - class_means[labels]
    sw = centred.T @ centred / n
    total = (feats - mean).pow(2).mean(0)
    sw = sw + torch.diag(ridge * total + 1e-12 * total.detach().mean() + 1e-30)
    return torch.linalg.solve(sw, sb).diagonal().sum() / c


def batch_gpp_scores(feats: Tensor, labels: Tensor, shrink: float = 0.0) -> Tensor:
    """The gpp criterion's channel scores on one batch of pooled features (float64, no gradient);
    ``shrink`` as the criterion's (``gpp_reg``: 1.0), so the push aims at the set that pruning keeps."""
    f = feats.detach().double().cpu()
    classes = int(labels.max()) + 1
    sums = torch.zeros(classes, f.shape[1], dtype=torch.float64).index_add_(0, labels.cpu(), f)
    counts = torch.bincount(labels.cpu(), minlength=classes)
    if int((counts > 0).sum()) < 2:
        return torch.zeros(f.shape[1], dtype=torch.float64)
    return lda_channel_scores(sums, counts, f.T @ f, ridge=1e-2, shrink=shrink)


class PushLoss:
    """A training loss (the loop's ``loss_fn``) alternating task and push steps on one or more layers
    (the push term is the mean over them)."""

    def __init__(
        self, layer: str | Sequence[str], *, push_weight: float = 0.1, cov_weight: float = 0.1,
        task_in_push: float = 1.0, momentum: float = 0.0, sparse_weight: float = 0.0,
        keep: dict[str, int] | None = None, rest_weight: float = 0.0, push_every: int = 2,
        shrink: float = 0.0, grid: int = 1,
    ):  # fmt: skip
        weights = (push_weight, cov_weight, task_in_push, sparse_weight, rest_weight, shrink)
        if not all(w >= 0 for w in weights):
            raise ConfigError(
                "push_weight, cov_weight, sparse_weight, rest_weight, shrink and task_in_push must be >= 0"
            )
        if not 0 <= momentum < 1:
            raise ConfigError(f"momentum must be in [0, 1) (0: batch class means), got {momentum!r}")
        self.layers = [layer] if isinstance(layer, str) else list(layer)
        if not self.layers or len(set(self.layers)) != len(self.layers):
            raise ConfigError(f"push layers must be distinct module names, at least one; got {layer!r}")
        if push_every not in (1, 2):
            raise ConfigError(
                "push_every must be 2 (alternate task and push batches) or 1 (push every batch), "
                f"got {push_every!r}"
            )
        self.push_every = push_every
        self.shrink = float(shrink)  # the kept set's gpp scores: match the pruning criterion's shrink
        if not (isinstance(grid, int) and grid >= 1):
            raise ConfigError(f"push grid must be an integer >= 1 (the gpp criterion's grid), got {grid!r}")
        self.grid = grid  # ... and its grid
        self.keep = {str(k): int(v) for k, v in (keep or {}).items()}
        if any(k not in self.layers for k in self.keep) or any(v < 1 for v in self.keep.values()):
            raise ConfigError(
                f"push keep must map push layers ({', '.join(self.layers)}) to channel counts >= 1; "
                f"got {keep!r}"
            )
        self.push_weight, self.cov_weight, self.rest_weight = push_weight, cov_weight, rest_weight
        self.task_in_push, self.momentum, self.sparse_weight = task_in_push, momentum, sparse_weight
        self.step = 0
        # per layer: (K, C) running class means and (K,) which classes have one; only with momentum > 0
        self.centroids: dict[str, Tensor] = {}
        self.seen: dict[str, Tensor] = {}
        self.scores: dict[str, Tensor] = {}  # per ``keep`` layer: running gpp scores choosing the kept set
        self.pushes = 0
        self.running = {
            "ratio": 0.0,
            "offdiag": 0.0,
            "concentration": 0.0,
            "rest_share": 0.0,
        }  # means over all push steps
        self.last: dict[str, float] = {}

    def recipe(self) -> dict[str, Any]:
        return {"loss": "gpp_push", "layers": list(self.layers), "push_weight": self.push_weight,
                "cov_weight": self.cov_weight, "task_in_push": self.task_in_push,
                "momentum": self.momentum, "sparse_weight": self.sparse_weight, "keep": dict(self.keep),
                "rest_weight": self.rest_weight, "push_every": self.push_every,
                **({"shrink": self.shrink} if self.shrink else {}),
                **({"grid": self.grid} if self.grid > 1 else {})}  # fmt: skip

    # -- checkpointed state -------------------------------------------------------------------------
    def runtime_state(self) -> dict[str, Any]:
        """Plain data and tensors (loads with ``weights_only=True``): step, centroids, running terms."""
        return {
            "step": self.step,
            "pushes": self.pushes,
            "running": dict(self.running),
            "centroids": {k: v.detach().clone() for k, v in self.centroids.items()},
            "seen": {k: v.clone() for k, v in self.seen.items()},
            "scores": {k: v.clone() for k, v in self.scores.items()},
        }

    def load_runtime_state(self, state: dict[str, Any]) -> None:
        try:
            step, pushes, running = int(state["step"]), int(state["pushes"]), state["running"]
            running = {key: float(running.get(key, 0.0)) for key in self.running}
            centroids, seen = dict(state["centroids"]), dict(state["seen"])
            scores = {str(k): torch.as_tensor(v).double() for k, v in dict(state.get("scores", {})).items()}
            if any(k not in self.keep or v.dim() != 1 for k, v in scores.items()):
                raise ValueError("kept-set scores do not match this loss's keep layers")
            for name in set(centroids) | set(seen):
                c, k = centroids.get(name), seen.get(name)
                if (
                    name not in self.layers
                    or c is None
                    or k is None
                    or c.dim() != 2
                    or k.shape != c.shape[:1]
                ):
                    raise ValueError(f"centroids of {name!r} do not match this loss")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CheckpointError(
                f"the push loss state in the checkpoint is malformed ({exc}); start a new out_dir"
            ) from None
        self.step, self.pushes, self.running, self.scores = step, pushes, running, scores
        device = next(iter(self.centroids.values())).device if self.centroids else None
        self.centroids = {k: v.to(device) for k, v in centroids.items()}
        self.seen = {k: v.to(device) for k, v in seen.items()}

    def to(self, device: torch.device | str) -> PushLoss:
        self.centroids = {k: v.to(device) for k, v in self.centroids.items()}
        self.seen = {k: v.to(device) for k, v in self.seen.items()}
        return self

    # -- the loss -----------------------------------------------------------------------------------
    def _centroids(self, layer: str, feats: Tensor, labels: Tensor) -> Tensor | None:
        """Update ``layer``'s running class means with this batch's and return them (None without
        momentum)."""
        if self.momentum == 0:
            return None
        old_c = self.centroids.get(layer)
        classes = max(int(labels.max()) + 1, 0 if old_c is None else old_c.shape[0])
        if classes > MAX_CLASSES:
            raise ConfigError(f"push loss: label {classes - 1} is above the limit of {MAX_CLASSES} classes")
        if old_c is None or old_c.shape[1] != feats.shape[1]:  # first batch, or the layer changed width
            centroids = feats.new_zeros(classes, feats.shape[1]).detach()
            seen = torch.zeros(classes, dtype=torch.bool, device=feats.device)
        else:
            grow = classes - old_c.shape[0]
            centroids, seen = F.pad(old_c, (0, 0, 0, grow)), F.pad(self.seen[layer], (0, grow))
        batch_means, counts = _class_means(feats.detach(), labels, classes)
        batch_means = batch_means.to(centroids.dtype)
        present = counts > 0
        fresh, old = present & ~seen, present & seen
        m = self.momentum
        centroids[fresh] = batch_means[fresh]
        centroids[old] = m * centroids[old] + (1 - m) * batch_means[old]
        self.centroids[layer], self.seen[layer] = centroids, seen | present
        return centroids.to(feats.dtype)

    def _kept_set(self, layer: str, out: Tensor, labels: Tensor) -> Tensor:
        """Indices of the ``keep[layer]`` channels with the highest gpp scores (of the layer's output
        ``out``), averaged over the first ``SELECT_PUSHES`` push batches and then frozen: a set that kept
        moving would have energy pushed out of channels it later wants back."""
        old = self.scores.get(layer)
        channels = out.shape[1]
        if old is None or old.shape[0] != channels or self.pushes < SELECT_PUSHES:
            batch = per_channel(batch_gpp_scores(pooled(out, self.grid), labels, self.shrink), channels)
            fresh = old is None or old.shape[0] != channels
            scores = batch if fresh else old + (batch - old) / (min(self.pushes, SELECT_PUSHES) + 1)
            self.scores[layer] = scores
        scores = self.scores[layer]
        k = min(self.keep[layer], channels)
        return torch.topk(scores, k).indices.sort().values.to(out.device)

    def kept(self) -> dict[str, list[int]]:
        """Per ``keep`` layer, the channels the push aimed at (sorted): what the prune step should keep.

        Pruning by gpp scores measured afterwards can keep another set (measured on LeNet-5 after the
        gentle push: 0 of 2 conv1 channels in common on one base), which wastes the push."""
        missing = [name for name in self.keep if name not in self.scores]
        if missing:
            raise ConfigError(
                f"the push has not chosen kept channels for {', '.join(map(repr, missing))} yet: train with "
                "this loss first (the set is fixed after the first push batches)"
            )
        top = {
            name: torch.topk(self.scores[name], min(k, len(self.scores[name])))
            for name, k in self.keep.items()
        }
        return {name: sorted(int(i) for i in t.indices) for name, t in top.items()}

    def __call__(self, model: nn.Module, inputs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        modules = dict(getattr(model, "module", model).named_modules())
        missing = [name for name in self.layers if name not in modules]
        if missing:
            raise ConfigError(
                f"the push layer(s) {', '.join(map(repr, missing))} are not modules of {type(model).__name__}"
            )
        seen: dict[str, Tensor] = {}

        def keep(name: str) -> Any:
            def hook(module: nn.Module, _args: Any, out: Tensor) -> None:
                # returns None: a forward hook's return value replaces the module's output (the lambda
                # returned setdefault's value, so a module called twice, torchvision's shared relu, got
                # its first call's output back, and a channels-last Linear its permuted one)
                if name not in seen:
                    seen[name] = _channels_first(module, out)

            return hook

        handles = [modules[name].register_forward_hook(keep(name)) for name in self.layers]
        try:
            logits = model(inputs)
        finally:
            for handle in handles:
                handle.remove()
        ce = F.cross_entropy(logits, targets)
        pushing = self.step % self.push_every == self.push_every - 1
        self.step += 1
        if not pushing:
            return ce, logits
        ratios, offs, concs, rests = [], [], [], []
        for name in self.layers:
            out = seen[name]
            feats = out.reshape(out.shape[0], out.shape[1], -1).mean(-1)
            centroids = self._centroids(name, feats, targets)
            ratio, off = scatter_ratio_and_decorrelation(feats, targets, centroids)
            if name in self.keep:
                kept = self._kept_set(name, out, targets)
                ratio = -kept_eigen_objective(feats[:, kept], targets)
                energy = out.reshape(out.shape[0], out.shape[1], -1).pow(2).mean((0, 2))
                fisher = channel_fisher(feats, targets)
                rest = (
                    2 - energy[kept].sum() / energy.sum().clamp_min(1e-12) - fisher[kept].sum() / fisher.sum()
                )
                rests.append(rest)
            ratios.append(ratio)
            offs.append(off)
            concs.append(fisher_concentration(feats, targets, centroids))
        ratio, off, conc = (torch.stack(t).mean() for t in (ratios, offs, concs))
        rest = torch.stack(rests).mean() if rests else ratio.new_zeros(())
        push = ratio + self.cov_weight * off - self.sparse_weight * conc + self.rest_weight * rest
        self.last = {"ce": float(ce.detach()), "ratio": float(ratio.detach()), "offdiag": float(off.detach()),
                     "concentration": float(conc.detach()), "rest_share": float(rest.detach())}  # fmt: skip
        self.pushes += 1
        for key in self.running:
            self.running[key] += (self.last[key] - self.running[key]) / self.pushes
        return self.task_in_push * ce + self.push_weight * push, logits


def _channels_first(module: nn.Module, out: Tensor) -> Tensor:
    """A layer's output with its channels on dim 1: a Linear's features are its last dim, which on a
    channels-last block (ConvNeXt's pointwise Linear on (N, H, W, C)) is not dim 1."""
    return out.movedim(-1, 1) if isinstance(module, nn.Linear) and out.dim() > 2 else out
