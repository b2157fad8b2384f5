"""Base class for data-driven criteria: accumulate per-group statistics in one pass, then score."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from netsculpt.errors import PruningError
from netsculpt.graph.channel_graph import ChannelGraph
from netsculpt.graph.groups import ChannelGroup
from netsculpt.importance.base import ACTIVATIONS, WEIGHTS, check_scores, criterion_name
from netsculpt.importance.calib_checks import check_data
from netsculpt.importance.collect import group_sites, stream
from netsculpt.importance.sites import Site


@dataclass
class StreamingCriterion:
    """Subclasses implement ``on_activation`` (and ``on_gradient`` when ``needs_gradients``) to
    accumulate state keyed by group id, and ``finalize(group)`` to return one score per channel.

    ``calib_batches`` bounds the pass; ``all_sites`` observes every site of a group instead of the
    preferred post-activation ones.
    """

    calib_batches: int | None = 16
    all_sites: bool = False
    needs = frozenset({WEIGHTS, ACTIVATIONS})
    needs_gradients = False

    def score(
        self, model: nn.Module, graph: ChannelGraph, data: Iterable[Any] | None
    ) -> dict[str, np.ndarray]:
        if data is None:
            raise PruningError(
                f"criterion {type(self).__name__} needs {', '.join(sorted(self.needs - {WEIGHTS}))}: "
                "pass data= (an iterable of (inputs, labels) batches, e.g. a DataLoader)"
            )
        check_data(data)
        self.state: dict[str, Any] = {}
        self.model = model
        self.graph = graph
        sites = self.select_sites(model, graph)
        self.samples = stream(
            model,
            graph,
            self,
            data,
            max_batches=self.calib_batches,
            sites=sites,
            description=type(self).__name__,
            task=getattr(self, "task", None),
        )
        self.check_calibration()
        scores = {}
        for g in graph.prunable_groups:
            s = np.asarray(self.finalize(g), dtype=np.float64)
            check_scores(g, s, criterion_name(self))
            scores[g.id] = s
        return scores

    def check_calibration(self) -> None:
        """Warn when the pass saw too little data for the estimator (criteria with a known need)."""

    def select_sites(self, model: nn.Module, graph: ChannelGraph) -> dict[str, list[Site]]:
        """Where each group is observed; subclasses pick among all sites (see ``site_choice``)."""
        return group_sites(model, graph, all_sites=self.all_sites)

    def on_activation(self, group: ChannelGroup, site: Site, x: torch.Tensor, labels: torch.Tensor) -> None:
        pass

    def on_gradient(
        self, group: ChannelGroup, site: Site, x: torch.Tensor, grad: torch.Tensor, labels: torch.Tensor
    ) -> None:
        pass

    def finalize(self, group: ChannelGroup) -> np.ndarray:
        raise NotImplementedError

    def accumulate(self, group: ChannelGroup, value: torch.Tensor) -> None:
        """Add a per-channel tensor (shape ``(group.size,)``) into the group's running sum."""
        value = value.detach().double().cpu()
        prev = self.state.get(group.id)
        self.state[group.id] = value if prev is None else prev + value
