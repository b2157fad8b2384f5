"""First-order Taylor importance (Molchanov et al., ICLR 2017 / CVPR 2019) from channel-mask gradients.

Put a mask ``m_c`` on channel ``c`` at the group's mask sites (see ``site_choice``: the outputs of the
last producing module of each chain, so ``m_c = 0`` is exactly the pruned network). For sample ``n``,
``dL_n/dm_c = sum_sites sum_positions a * g``; removing the channel changes the loss by about
``-dL/dm_c``. The score is ``|mean_n dL_n/dm_c|``: the absolute first-order loss change, averaged over
calibration samples, in loss units (so scores compare across groups). ``taylor_abs`` is
``mean_n |dL_n/dm_c|`` (the 2017 paper's order: absolute per example, then averaged), which does not
cancel when the mean gradient of a trained model is near zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from netsculpt.graph.channel_graph import ChannelGraph
from netsculpt.graph.groups import ChannelGroup
from netsculpt.importance.base import ACTIVATIONS, GRADIENTS, LABELS, WEIGHTS, register_criterion
from netsculpt.importance.feature_maps import FeatureMapCriterion
from netsculpt.importance.site_choice import spatial_sum
from netsculpt.importance.sites import Site


@dataclass
class MaskGradientCriterion(FeatureMapCriterion):
    """Collects ``dL_n/dm_c`` per sample, summed over a group's mask sites, one batch at a time.

    The calibration loss is the batch *mean*, so the per-sample gradient is the batch size times the hook's
    gradient. Sites of one batch all report during its backward pass, before the next batch's forward;
    ``on_activation`` of the next batch (or ``finalize``) therefore closes the previous batch.
    """

    site_kind: ClassVar[str] = "mask"
    needs = frozenset({WEIGHTS, ACTIVATIONS, GRADIENTS, LABELS})
    needs_gradients = True

    def select_sites(self, model: nn.Module, graph: ChannelGraph) -> dict[str, list[Site]]:
        self.pending: dict[str, tuple[ChannelGroup, torch.Tensor]] = {}
        return super().select_sites(model, graph)

    def on_activation(self, group: ChannelGroup, site: Site, x: torch.Tensor, labels: torch.Tensor) -> None:
        if self.pending:
            self._close_batch()
        super().on_activation(group, site, x, labels)

    def observe_gradient(self, group: ChannelGroup, site: Site, x: torch.Tensor, grad: torch.Tensor,
                         labels: torch.Tensor | None) -> None:  # fmt: skip
        per_sample = spatial_sum(x.double() * grad.double()) * x.shape[0]  # (N, C): dL_n / dm_c at this site
        prev = self.pending.get(group.id)
        self.pending[group.id] = (group, per_sample if prev is None else prev[1] + per_sample)

    def _close_batch(self) -> None:
        for group, dm in self.pending.values():
            self.add(group, self.batch_statistic(dm), dm.shape[0])
        self.pending = {}

    def batch_statistic(self, dm: torch.Tensor) -> torch.Tensor:
        """Per-channel sum over the batch of a function of ``dm`` (N, C)."""
        raise NotImplementedError

    def finalize(self, group: ChannelGroup) -> np.ndarray:
        if self.pending:
            self._close_batch()
        return self.mean(group)


@register_criterion("taylor")
@dataclass
class Taylor(MaskGradientCriterion):
    """``|mean over samples of dL/dm_c|``: Molchanov's first-order criterion for coupled channels."""

    def batch_statistic(self, dm: torch.Tensor) -> torch.Tensor:
        return dm.sum(0)

    def finalize(self, group: ChannelGroup) -> np.ndarray:
        return np.abs(super().finalize(group))


@register_criterion("taylor_abs")
@dataclass
class TaylorAbs(MaskGradientCriterion):
    """``mean over samples of |dL_n/dm_c|``: Molchanov et al. 2017's per-example absolute, then averaged.

    In a trained model the sample-mean gradient is near zero, so ``taylor``'s ``|mean|`` keeps only
    what survives sign cancellation (noise for attention heads of a trained LM: worse than random in
    benchmarks/lm_criteria.py). Taking the absolute per sample first does not cancel: a channel whose
    removal helps some samples and hurts others still scores by how much it matters to each.
    """

    def batch_statistic(self, dm: torch.Tensor) -> torch.Tensor:
        return dm.abs().sum(0)
