"""Which feature maps a data-driven criterion looks at, among all the sites where a group is visible.

``find_sites`` lists every leaf-module output that carries a group's channels; many of them are the same
information seen twice (an ``nn.Identity`` shortcut returns its input tensor; a max-pool after a ReLU
shows the same rectified maps again). Criteria need two different selections:

- **activation sites** (HRank, CHIP, HRel score feature maps after the nonlinearity): the first
  post-activation output on each path, so a residual stage contributes one map per block.
- **mask sites** (Taylor, Fisher differentiate the loss with respect to a channel mask): the outputs of
  the last *producing* module of each chain (a conv's BatchNorm, not the conv). Scaling those outputs by
  ``m`` scales exactly the slices the engine zeroes when it prunes, so ``m = 0`` is the pruned network and
  ``dL/dm`` at ``m = 1`` is the first-order change of the loss on the way there.
"""

from __future__ import annotations

import torch
from torch import nn

from netsculpt.graph.channel_graph import ChannelGraph
from netsculpt.graph.groups import ChannelGroup
from netsculpt.importance.collect import group_sites
from netsculpt.importance.sites import Site


def site_value(graph: ChannelGraph, site: Site) -> int:
    """The traced value id a site reads (equal ids: the same tensor)."""
    return graph.builder.module_calls[site.module][site.call][site.output_index]


def distinct_sites(graph: ChannelGraph, sites: list[Site]) -> list[Site]:
    """Drop sites that read a tensor an earlier site already reads (identity modules, aliases)."""
    seen: set[int] = set()
    out = []
    for s in sites:
        vid = site_value(graph, s)
        if vid not in seen:
            seen.add(vid)
            out.append(s)
    return out


def _first_call_inputs(graph: ChannelGraph, module: str) -> set[int]:
    io = graph.builder.module_io.get(module)
    return set(io[0]) if io else set()


def _first_post_activation(graph: ChannelGraph, sites: list[Site]) -> list[Site]:
    post = distinct_sites(graph, [s for s in sites if s.post_activation])
    values = {site_value(graph, s) for s in post}
    return [
        s
        for s in post
        if s.call > 0 or not (_first_call_inputs(graph, s.module) & (values - {site_value(graph, s)}))
    ] or post


def _last_producers(graph: ChannelGraph, group: ChannelGroup, sites: list[Site]) -> list[Site]:
    producers = {m.module for m in group.members if m.role == "out"}
    candidates = distinct_sites(graph, [s for s in sites if s.module in producers])
    # a producer whose output feeds another producer of the group directly (conv -> BatchNorm) is not last
    fed = set().union(*(_first_call_inputs(graph, s.module) for s in candidates))
    return [s for s in candidates if site_value(graph, s) not in fed] or candidates[-1:]


def activation_sites(graph: ChannelGraph, group: ChannelGroup, sites: list[Site]) -> list[Site]:
    """First post-activation site on each path; for groups with no nonlinearity (a linear bottleneck's
    projection) the producers' outputs; else the last site."""
    return _first_post_activation(graph, sites) or _last_producers(graph, group, sites) or sites[-1:]


def mask_sites(graph: ChannelGraph, group: ChannelGroup, sites: list[Site]) -> list[Site]:
    """Outputs of the last producing module of each chain; activation sites when none is visible."""
    return _last_producers(graph, group, sites) or _first_post_activation(graph, sites) or sites[-1:]


def choose_sites(
    model: nn.Module, graph: ChannelGraph, kind: str, *, all_sites: bool = False
) -> dict[str, list[Site]]:
    """Sites per prunable group: ``kind`` is ``"activation"`` or ``"mask"``; ``all_sites`` takes every
    distinct site instead (``group_sites`` already raised if a group has none)."""
    everything = group_sites(model, graph, all_sites=True)
    out = {}
    for g in graph.prunable_groups:
        sites = everything[g.id]
        if all_sites:
            out[g.id] = distinct_sites(graph, sites)
        elif kind == "mask":
            out[g.id] = mask_sites(graph, g, sites)
        else:
            out[g.id] = activation_sites(graph, g, sites)
    return out


def as_matrices(x: torch.Tensor) -> torch.Tensor:
    """(N, C, *rest) feature maps as (N, C, rows, cols) matrices: 2-D maps as they are, 1-D as one row,
    higher-dimensional maps with the trailing dims flattened into columns."""
    n, c = x.shape[:2]
    rest = x.shape[2:]
    if len(rest) == 0:
        return x.reshape(n, c, 1, 1)
    if len(rest) == 1:
        return x.reshape(n, c, 1, rest[0])
    return x.reshape(n, c, rest[0], -1)


def spatial_sum(x: torch.Tensor) -> torch.Tensor:
    """(N, C, *rest) -> (N, C): sum over every position of each channel's map."""
    return x.reshape(x.shape[0], x.shape[1], -1).sum(-1)


__all__ = [
    "activation_sites",
    "as_matrices",
    "choose_sites",
    "distinct_sites",
    "mask_sites",
    "site_value",
    "spatial_sum",
]
