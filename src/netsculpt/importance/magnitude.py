"""Weight magnitude criteria: L1 / L2 norm of the filters that produce each channel."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from netsculpt.graph.groups import ChannelGroup
from netsculpt.importance.base import WeightCriterion, producer_weights, register_criterion


def slice_norms(
    t: torch.Tensor, dim: int, positions: np.ndarray, channels: np.ndarray, n: int, p: int
) -> np.ndarray:
    """Per-channel p-norm (to the p) of ``t`` sliced along ``dim``; channels may own several positions."""
    moved = t.detach().float().movedim(dim, 0).reshape(t.shape[dim], -1)
    per_pos = (
        moved.abs().sum(1) if p == 1 else moved.square().sum(1) if p == 2 else moved.abs().pow(p).sum(1)
    ).numpy()
    out = np.zeros(n)
    np.add.at(out, channels, per_pos[positions])
    return out


@dataclass
class Magnitude(WeightCriterion):
    """Sum over producing members of each channel's ``||w||_p``, each member normalised by its mean so
    that layers with larger weights do not dominate the group's ranking."""

    p: int = 1

    def group_scores(self, group: ChannelGroup, tensors: dict[str, torch.Tensor]) -> np.ndarray:
        total = np.zeros(group.size)
        for m in producer_weights(group, tensors):
            norms = slice_norms(tensors[m.name], m.dim, m.positions, m.channels, group.size, self.p) ** (
                1 / self.p
            )
            mean = norms.mean()
            total += norms / mean if mean > 0 else norms
        return total


register_criterion("l1")(lambda **kw: Magnitude(p=1, **kw))
register_criterion("l2")(lambda **kw: Magnitude(p=2, **kw))


@dataclass
class RandomCriterion(WeightCriterion):
    """Random scores: the baseline every criterion must beat."""

    seed: int = 0

    def group_scores(self, group: ChannelGroup, tensors: dict[str, torch.Tensor]) -> np.ndarray:
        rng = np.random.default_rng([self.seed, len(group.id), group.size, sum(map(ord, group.id))])
        return rng.random(group.size)


register_criterion("random")(RandomCriterion)
