"""Which of a layer's channels a prune plan kept, and how independent each channel is (CHIP score).

A plan names kept channels per coupled group; a layer's output shows a group's channels at the
positions the traced graph gives (:func:`netsculpt.importance.sites.find_sites`), so "kept" can be
drawn per layer even where one group spans many layers (a residual stage).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from netsculpt.explain.capture import forward_with_maps, restored
from netsculpt.graph.channel_graph import ChannelGraph
from netsculpt.importance.chip import nuclear_norm_drops
from netsculpt.importance.sites import find_sites
from netsculpt.surgery.plan import PrunePlan


def kept_channels(
    model: nn.Module, graph: ChannelGraph, plan: PrunePlan, layer: str, width: int
) -> torch.Tensor:
    """Bool (width,): True where ``layer``'s output channel survives ``plan`` (first call of the layer)."""
    mask = torch.ones(width, dtype=torch.bool)
    for group in graph.groups:
        keep = plan.keep.get(group.id)
        if keep is None:
            continue
        kept = set(keep)
        for site in find_sites(model, graph, group):
            if site.module != layer or site.call != 0 or site.output_index != 0 or site.dim != 1:
                continue
            for k, positions in enumerate(site.index.reshape(len(site.index), -1).tolist()):
                for pos in positions:  # a unit of several channels (a GroupNorm group) goes whole
                    if k not in kept and pos < width:
                        mask[pos] = False
    return mask


def masked_copy(model: nn.Module, graph: ChannelGraph, plan: PrunePlan) -> nn.Module:
    """A copy of ``model`` with the channels ``plan`` removes zeroed: what the pruned model must equal."""
    from netsculpt.surgery.apply import mask_

    return mask_(copy.deepcopy(model), graph, plan)


def independence(model: nn.Module, images: torch.Tensor, layer: str) -> torch.Tensor:
    """CHIP channel independence of ``layer`` (Sui et al. 2021): mean over ``images`` of the nuclear-norm
    drop when one channel's map is removed. (C,) float64; the pruning criterion's own formula."""
    from netsculpt.explain.chip_maps import INPUT_VALUES_PER_PASS

    step = max(1, INPUT_VALUES_PER_PASS // max(images[0].numel(), 1))
    total = None
    with restored(model), torch.no_grad():
        for lo in range(0, images.shape[0], step):  # chunks: a few hundred large images stay in memory
            _, store = forward_with_maps(model, images[lo : lo + step], [layer])
            a = store[layer].detach()
            drops = nuclear_norm_drops(a.reshape(a.shape[0], a.shape[1], -1)).sum(0)
            total = drops if total is None else total + drops
    assert total is not None
    return total / images.shape[0]


def channel_summary(scores: torch.Tensor, kept: torch.Tensor | None) -> dict[str, Any]:
    """Mean score of kept vs removed channels, for the JSON: does pruning drop the dependent ones?"""
    out: dict[str, Any] = {"channels": int(scores.numel()), "mean": float(scores.mean())}
    if kept is not None:
        out["kept"] = int(kept.sum())
        out["mean_kept"] = float(scores[kept].mean()) if bool(kept.any()) else None
        out["mean_removed"] = float(scores[~kept].mean()) if bool((~kept).any()) else None
    return out
