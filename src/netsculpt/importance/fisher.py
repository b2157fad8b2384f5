"""Group Fisher (Liu et al., ICML 2021): squared channel-mask gradients, normalised by what removal saves.

With one mask ``m_c`` shared by every coupled site of a group (see ``site_choice``: the outputs of the
last producing module of each chain), ``dL_n/dm_c = sum_sites sum_positions a * g`` for sample ``n``.
The Fisher estimate of the loss increase when the channel goes is ``(1 / 2N) sum_n (dL_n/dm_c)^2``. The
paper divides it by the memory the channel frees (inference speed tracks memory more than FLOPs), so a
channel of a wide, high-resolution group must matter more to survive than one that frees little.

``normalize``: ``"memory"`` (default) — activation elements per sample the channel occupies across all
distinct feature maps of the group; ``"macs"`` — multiply-accumulates per sample of every conv/linear
slice the channel owns (producers' filters and consumers' input slices); ``None`` — the raw estimate.
Within one group the cost is the same for every channel, so normalisation only changes how groups compare
(e.g. for global allocation), never a group's own ranking.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from netsculpt.errors import ConfigError
from netsculpt.graph.channel_graph import ChannelGraph
from netsculpt.graph.groups import ChannelGroup
from netsculpt.importance.base import register_criterion
from netsculpt.importance.collect import group_sites
from netsculpt.importance.site_choice import distinct_sites, site_value
from netsculpt.importance.sites import Site
from netsculpt.importance.taylor import MaskGradientCriterion

NORMALIZATIONS = ("memory", "macs", None)


def memory_cost(graph: ChannelGraph, sites: list[Site]) -> float:
    """Activation elements per sample one channel occupies, over the distinct feature maps in ``sites``."""
    total = 0.0
    batch = graph.input_shapes[0][0] if graph.input_shapes and graph.input_shapes[0] else 1
    for site in distinct_sites(graph, sites):
        shape = graph.builder.values[site_value(graph, site)].shape
        n = batch if site.dim != 0 and len(shape) > 1 and shape[0] == batch else 1
        total += float(np.prod(shape)) / shape[site.dim] / n * site.multiplicity
    return total


def macs_cost(graph: ChannelGraph, group: ChannelGroup, model: torch.nn.Module) -> float:
    """Multiply-accumulates per sample that one channel of ``group`` takes part in (conv/linear weights)."""
    params = dict(model.named_parameters())
    total = 0.0
    for m in group.members:
        w = params.get(m.name)
        io = graph.builder.module_io.get(m.module)
        if w is None or w.dim() < 2 or not io or not io[1]:
            continue
        out = graph.builder.values[io[1][0]].shape
        positions = float(np.prod(out[2:])) if w.dim() > 2 else float(np.prod(out[1:-1]))
        per_slice = w.numel() / w.shape[m.dim]
        total += per_slice * len(m.positions) / group.size * positions
    return total


@register_criterion("fisher")
@dataclass
class GroupFisher(MaskGradientCriterion):
    """``(1/2N) sum_n (dL_n/dm_c)^2 / cost``, the mask shared by all of a group's coupled sites."""

    normalize: str | None = "memory"

    def __post_init__(self) -> None:
        if self.normalize not in NORMALIZATIONS:
            raise ConfigError(
                f"fisher normalize={self.normalize!r} is not supported; use 'memory', 'macs' or None"
            )

    def batch_statistic(self, dm: torch.Tensor) -> torch.Tensor:
        return 0.5 * dm.square().sum(0)

    def finalize(self, group: ChannelGroup) -> np.ndarray:
        fisher = super().finalize(group)
        if self.normalize is None:
            return fisher
        if self.normalize == "memory":
            if getattr(self, "_all_sites", None) is None or self._all_sites[0] is not self.graph:
                self._all_sites = (self.graph, group_sites(self.model, self.graph, all_sites=True))
            cost = memory_cost(self.graph, self._all_sites[1][group.id])
        else:
            cost = macs_cost(self.graph, group, self.model)
        return fisher / cost if cost > 0 else fisher
