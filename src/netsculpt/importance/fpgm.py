"""FPGM (He et al., CVPR 2019): filters near the geometric median of their layer are redundant.

The geometric median minimises the sum of Euclidean distances to all filters, so a filter's distance sum
``sum_j ||w_i - w_j||`` is smallest for the filter closest to it — the one whose information the others
already carry. That sum (the paper's practical form) is the score: small = redundant = pruned first. For
a group, each producing layer's sums are divided by their mean, then summed over producers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from netsculpt.graph.groups import ChannelGroup, GroupMember
from netsculpt.importance.base import WeightCriterion, producer_weights, register_criterion


def channel_filters(t: torch.Tensor, member: GroupMember, n: int) -> torch.Tensor:
    """(n, features) matrix: every slice a channel owns along ``member.dim``, concatenated (zero-padded
    when channels own different numbers of positions)."""
    moved = t.detach().double().movedim(member.dim, 0).reshape(t.shape[member.dim], -1)
    if len(member.channels) == n and np.array_equal(np.sort(member.channels), np.arange(n)):
        order = np.argsort(member.channels)  # the usual case: one position per channel
        return moved[torch.as_tensor(member.positions[order])]
    slices = member.slices(n)
    width = max((len(s) for s in slices), default=0)
    out = torch.zeros(n, width, moved.shape[1], dtype=torch.float64)
    for c, pos in enumerate(slices):
        if len(pos):
            out[c, : len(pos)] = moved[torch.as_tensor(pos)]
    return out.reshape(n, -1)


def distance_sums(filters: torch.Tensor) -> torch.Tensor:
    """Sum of Euclidean distances from each row to every other row."""
    return torch.cdist(filters, filters).sum(1)


@register_criterion("fpgm")
@dataclass
class FPGM(WeightCriterion):
    """Distance of each channel's filters to the others (larger = less replaceable = keep)."""

    def group_scores(self, group: ChannelGroup, tensors: dict[str, torch.Tensor]) -> np.ndarray:
        total = np.zeros(group.size)
        for m in producer_weights(group, tensors):
            sums = distance_sums(channel_filters(tensors[m.name], m, group.size)).numpy()
            mean = sums.mean()
            total += sums / mean if mean > 0 else sums
        return total
