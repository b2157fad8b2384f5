"""LAMP (Lee et al., ICLR 2021): magnitude scores rescaled so that one global threshold sets each layer's
sparsity sensibly.

LAMP scores a weight by its squared magnitude divided by the sum of the squared magnitudes of the same
layer's weights that are at least as large. For channels we apply that definition to each channel's
squared L2 norm, summed over every filter that produces it (a coupled group is one "layer"), as
Torch-Pruning adapts it. Within a group the order is the squared norm's (the map is monotone); the most
important channel of every group scores 1, so a layer is never emptied by a global cut of raw scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from netsculpt.graph.groups import ChannelGroup
from netsculpt.importance.base import WeightCriterion, producer_weights, register_criterion
from netsculpt.importance.magnitude import slice_norms


def lamp_normalize(importance: np.ndarray) -> np.ndarray:
    """``s_i / sum_{j: s_j >= s_i} s_j`` for non-negative ``s``; tied channels get the same score, and a
    channel whose denominator is 0 (it and all larger ones are 0) scores 0."""
    s = np.asarray(importance, dtype=np.float64)
    if not np.all(np.isfinite(s)):
        return s  # NaN weights: passed on for check_scores to name the group, never hidden as zeros
    if s.size and s.min() < 0:
        raise ValueError(f"LAMP needs non-negative importances, got minimum {s.min():.4g}")
    ordered = np.sort(s)
    suffix = np.cumsum(ordered[::-1])[::-1]  # suffix[k] = sum of ordered[k:]
    denom = suffix[np.searchsorted(ordered, s, side="left")]  # ties share the first (largest) sum
    return np.divide(s, denom, out=np.zeros_like(s), where=denom > 0)


@register_criterion("lamp")
@dataclass
class Lamp(WeightCriterion):
    """LAMP over each group's channel squared norms (raw sum over producing members, not mean-normalised:
    the normalisation LAMP applies afterwards is what makes groups comparable)."""

    def group_scores(self, group: ChannelGroup, tensors: dict[str, torch.Tensor]) -> np.ndarray:
        total = np.zeros(group.size)
        for m in producer_weights(group, tensors):
            total += slice_norms(tensors[m.name], m.dim, m.positions, m.channels, group.size, 2)
        return lamp_normalize(total)
