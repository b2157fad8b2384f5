"""Shared base for criteria that score feature maps: site choice, a NaN guard, and running means.

Every statistic is a per-channel running sum plus a count of observations (one per sample and site), so
memory stays at a few vectors per group however much calibration data streams past.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from netsculpt.graph.channel_graph import ChannelGraph
from netsculpt.graph.groups import ChannelGroup
from netsculpt.importance.site_choice import choose_sites
from netsculpt.importance.sites import Site
from netsculpt.importance.streaming import StreamingCriterion


@dataclass
class FeatureMapCriterion(StreamingCriterion):
    """Subclasses implement ``observe`` (and ``observe_gradient``) and call ``add``; the score is the mean
    of what was added per observation unless ``finalize`` is overridden.

    A non-finite activation or gradient marks the group so that its scores come out NaN and the
    framework's check names the group, instead of a linear-algebra error from deep inside torch.
    """

    site_kind: ClassVar[str] = "activation"

    def select_sites(self, model: nn.Module, graph: ChannelGraph) -> dict[str, list[Site]]:
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, float] = {}
        self.non_finite: set[str] = set()
        return choose_sites(model, graph, self.site_kind, all_sites=self.all_sites)

    def on_activation(self, group: ChannelGroup, site: Site, x: torch.Tensor, labels: torch.Tensor) -> None:
        if self._finite(group, x):
            self.observe(group, site, x, labels)

    def on_gradient(self, group: ChannelGroup, site: Site, x: torch.Tensor, grad: torch.Tensor,
                    labels: torch.Tensor) -> None:  # fmt: skip
        if self._finite(group, grad):
            self.observe_gradient(group, site, x, grad, labels)

    def observe(self, group: ChannelGroup, site: Site, x: torch.Tensor, labels: torch.Tensor | None) -> None:
        """One batch of the group's channels at one site: ``x`` is (N, C, *rest)."""

    def observe_gradient(self, group: ChannelGroup, site: Site, x: torch.Tensor, grad: torch.Tensor,
                         labels: torch.Tensor | None) -> None:  # fmt: skip
        """The loss gradient at the same site and batch."""

    def add(self, group: ChannelGroup, total: torch.Tensor, count: float) -> None:
        """Add a per-channel sum over ``count`` observations into the group's running mean."""
        total = total.detach().double().cpu()
        prev = self.sums.get(group.id)
        self.sums[group.id] = total if prev is None else prev + total
        self.counts[group.id] = self.counts.get(group.id, 0.0) + float(count)

    def mean(self, group: ChannelGroup) -> np.ndarray:
        if group.id in self.non_finite:
            return np.full(group.size, np.nan)
        if group.id not in self.sums or self.counts[group.id] == 0:
            return np.zeros(group.size)
        return (self.sums[group.id] / self.counts[group.id]).numpy()

    def finalize(self, group: ChannelGroup) -> np.ndarray:
        return self.mean(group)

    def _finite(self, group: ChannelGroup, t: torch.Tensor) -> bool:
        if group.id in self.non_finite:
            return False
        if not bool(torch.isfinite(t).all()):
            self.non_finite.add(group.id)
            return False
        return True
