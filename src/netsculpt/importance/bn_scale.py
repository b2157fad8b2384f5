"""Network slimming (Liu et al., ICCV 2017): a channel's BatchNorm scale |gamma| is its importance.

A group may hold several normalisation layers (a residual stage has one per block); its score is the
mean of |gamma| over them, in the raw units network slimming thresholds globally. A group with no
normalisation scale (no BatchNorm, or ``affine=False``) falls back to the ``l1`` filter norm, whose units
differ: compare such groups with each other, not against BatchNorm groups.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from netsculpt.graph.channel_graph import ChannelGraph
from netsculpt.graph.groups import ChannelGroup
from netsculpt.importance.base import WeightCriterion, register_criterion
from netsculpt.importance.magnitude import Magnitude, slice_norms

NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


@register_criterion("bn_scale")
@dataclass
class BNScale(WeightCriterion):
    """Mean |gamma| over the group's normalisation layers; ``l1`` where a group has none."""

    norm_weights: set[str] = field(default_factory=set, repr=False)

    def score(
        self, model: nn.Module, graph: ChannelGraph, data: Iterable[Any] | None = None
    ) -> dict[str, np.ndarray]:
        self.norm_weights = {
            f"{name}.weight"
            for name, module in model.named_modules()
            if isinstance(module, NORM_TYPES) and getattr(module, "weight", None) is not None
        }
        return super().score(model, graph, data)

    def group_scores(self, group: ChannelGroup, tensors: dict[str, torch.Tensor]) -> np.ndarray:
        scales = [m for m in group.members if m.role == "out" and m.name in self.norm_weights]
        if not scales:
            return Magnitude(p=1).group_scores(group, tensors)
        total = np.zeros(group.size)
        for m in scales:
            total += slice_norms(tensors[m.name], m.dim, m.positions, m.channels, group.size, 1)
        return total / len(scales)
