"""``gpp``: the prune step of Grow-Push-Prune (Tian, Arbel & Clark, "Deep LDA-pruned nets" / "Grow-Push-
Prune", 2019): keep the channels that carry a layer's linear discriminants.

Each channel's map is pooled to one value per image; over the calibration data the within-class
scatter ``Sw`` and between-class scatter ``Sb`` of those C-vectors give the discriminants, the solutions
of ``Sb v = lambda Sw v`` (at most classes - 1 of them). A channel's score is its share of the
discriminant output: ``sum_k lambda_k / sum(lambda) * |v_k[c]| * std_c``, the weight the discriminant
puts on the channel times how much the channel varies, so it does not depend on the channel's units.
After the push loss (:mod:`netsculpt.gpp.push`) has aligned the discriminants with few neurons, these
scores are concentrated and the rest of the channels can go. Statistics are running sums (a C x C matrix
and per-class sums), so memory does not grow with the calibration data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from netsculpt.errors import ConfigError, PruningError
from netsculpt.graph.groups import ChannelGroup
from netsculpt.importance.base import ACTIVATIONS, LABELS, WEIGHTS, register_criterion
from netsculpt.importance.feature_maps import FeatureMapCriterion
from netsculpt.importance.sites import Site


def pooled(x: torch.Tensor, grid: int = 1) -> torch.Tensor:
    """(N, C, *rest) → (N, C): each channel's mean over its positions; with ``grid`` > 1 and a 2-D map,
    (N, C * grid²), channel-major: the mean over each cell of a grid × grid partition of the map (where a
    channel fires, not only how much, which is what separates digits in early layers)."""
    if grid > 1 and x.dim() == 4:
        return torch.nn.functional.adaptive_avg_pool2d(x, grid).flatten(1)
    return x.reshape(x.shape[0], x.shape[1], -1).mean(-1)


def per_channel(scores: torch.Tensor, channels: int) -> torch.Tensor:
    """Feature scores of channel-major pooled features (``pooled`` with a grid) summed per channel."""
    return scores.reshape(channels, -1).sum(1)


def lda_channel_scores(
    class_sums: torch.Tensor,
    class_counts: torch.Tensor,
    second: torch.Tensor,
    ridge: float = 1e-4,
    shrink: float = 0.0,
) -> torch.Tensor:
    """Per-channel discriminant contribution from sufficient statistics (float64).

    ``class_sums`` (K, C): per-class sums of pooled features; ``class_counts`` (K,); ``second`` (C, C): the
    sum of outer products over all samples. ``ridge`` (relative to each channel's within-class variance) keeps
    ``Sw`` invertible when channels are dead or collinear. ``shrink`` adds ``shrink`` times the layer's mean
    channel variance to every channel's within-class variance (regularised LDA, shrinkage towards the
    identity): then a channel the network barely drives (small activity next to its layer's) carries
    little of the discriminants however cleanly it separates classes; at 0 the scores are unit-free per
    channel.
    """
    present = class_counts > 0
    sums, counts = class_sums[present], class_counts[present].double()
    n = counts.sum()
    mean = sums.sum(0) / n
    class_means = sums / counts[:, None]
    total = second / n - torch.outer(mean, mean)  # total covariance
    centred = class_means - mean
    sb = (counts[:, None, None] * centred[:, :, None] * centred[:, None, :]).sum(0) / n
    sw = total - sb
    c = sw.shape[0]
    # per-channel ridge: scaling one channel scales its own term, so the scores keep their unit-freedom
    diag = sw.diagonal().clamp_min(1e-12 * float(sw.diagonal().abs().max().clamp_min(1e-30)))
    sw = sw + ridge * torch.diag(diag)
    if shrink > 0:
        sw = sw + shrink * float(total.diagonal().clamp_min(0).mean()) * torch.eye(c, dtype=sw.dtype)
    # Sw^{-1/2} Sb Sw^{-1/2} is symmetric: its eigenvectors map back to the discriminants v = Sw^{-1/2} u
    evals, evecs = torch.linalg.eigh(sw)
    inv_sqrt = evecs @ torch.diag(evals.clamp_min(1e-30).rsqrt()) @ evecs.T
    lam, u = torch.linalg.eigh(inv_sqrt @ sb @ inv_sqrt)
    k = max(1, min(int(present.sum()) - 1, c))
    lam, u = lam[-k:].clamp_min(0), u[:, -k:]
    v = inv_sqrt @ u
    # each discriminant scaled to unit output std: then |v_c| * std_c is unit-free
    v = v / (v * (total @ v)).sum(0).clamp_min(1e-30).sqrt()
    std = total.diagonal().clamp_min(0).sqrt()
    weights = lam / lam.sum() if float(lam.sum()) > 0 else torch.full_like(lam, 1.0 / k)
    return (v.abs() * std[:, None] * weights[None, :]).sum(1)


@register_criterion("gpp")
@dataclass
class GPP(FeatureMapCriterion):
    """Channel contribution to the linear discriminants of the layer's pooled features (higher = keep)."""

    ridge: float = 1e-4
    shrink: float = 0.0  # > 0: regularised LDA, low-activity channels count less (after a push: 1.0)
    grid: int = 1  # > 1: LDA over each channel's grid x grid cell means, scores summed per channel
    needs: ClassVar[frozenset[str]] = frozenset({WEIGHTS, ACTIVATIONS, LABELS})
    per_image_labels: ClassVar[bool] = True  # class scatter needs one class per image, not boxes / masks

    def __post_init__(self) -> None:
        if not self.ridge > 0:
            raise ConfigError(f"gpp ridge must be > 0 (e.g. 1e-4), got {self.ridge!r}")
        if not self.shrink >= 0:
            raise ConfigError(f"gpp shrink must be >= 0 (0: unit-free per channel), got {self.shrink!r}")
        if not (isinstance(self.grid, int) and self.grid >= 1):
            raise ConfigError(
                f"gpp grid must be an integer >= 1 (1: one mean per channel), got {self.grid!r}"
            )

    def select_sites(self, model, graph):  # type: ignore[no-untyped-def]
        self.stats: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        self.channels: dict[str, int] = {}
        return super().select_sites(model, graph)

    def observe(self, group: ChannelGroup, site: Site, x: torch.Tensor, labels: torch.Tensor | None) -> None:
        if labels is None:
            raise PruningError(
                "criterion gpp needs labels: calibration batches must be (inputs, labels) pairs"
            )
        feats = pooled(x.detach(), self.grid).double().cpu()
        self.channels[group.id] = x.shape[1]
        labels = labels.reshape(-1).long().cpu()
        classes = int(labels.max()) + 1
        sums = torch.zeros(classes, feats.shape[1], dtype=torch.float64).index_add_(0, labels, feats)
        counts = torch.bincount(labels, minlength=classes)
        second = feats.T @ feats
        prev = self.stats.get(group.id)
        if prev is not None:
            k = max(prev[0].shape[0], classes)
            pad = lambda t: torch.nn.functional.pad(t, (0, 0, 0, k - t.shape[0]))  # noqa: E731
            sums = pad(prev[0]) + pad(sums)
            counts = torch.nn.functional.pad(prev[1], (0, k - len(prev[1]))) + torch.nn.functional.pad(
                counts, (0, k - len(counts))
            )
            second = prev[2] + second
        self.stats[group.id] = (sums, counts, second)

    def finalize(self, group: ChannelGroup) -> np.ndarray:
        if group.id in self.non_finite:
            return np.full(group.size, np.nan)
        if group.id not in self.stats:
            return np.zeros(group.size)
        sums, counts, second = self.stats[group.id]
        if int((counts > 0).sum()) < 2:
            raise PruningError(
                f"gpp saw one class only in the calibration data of group {group.id!r}: discriminants need "
                "two or more; pass calibration batches that mix classes"
            )
        scores = lda_channel_scores(sums, counts, second, self.ridge, self.shrink)
        return per_channel(scores, self.channels[group.id]).numpy()


@register_criterion("gpp_reg")
@dataclass
class GPPRegularised(GPP):
    """``gpp`` with ``shrink=1.0`` (regularised LDA): the variant to prune with after a push aimed at the
    kept set, chosen on held-out digits (docs/gpp.md); a name so recipes and the CLI can pick it."""

    shrink: float = 1.0
