"""Where a group's channels can be observed as feature maps: module outputs that carry them.

Data-driven criteria (Taylor, Fisher, HRank, CHIP, HRel) score channels from activations. A group's
channels appear in many traced values; a *site* is a leaf module's output in which every channel of the
group sits at exactly one index along one dimension, or, when each of the group's units is several
tensor channels removed together (a GroupNorm group of an FCOS head tower), at the same number of
indices each: those channels are then read as one unit, side by side along the first spatial dimension.
Post-activation sites are preferred (the papers
score feature maps after the nonlinearity); a residual stage's group has one site per block.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from netsculpt.graph.channel_graph import ChannelGraph
from netsculpt.graph.groups import ChannelGroup

# modules whose output is a linear map of the channels: a site after them is "pre-activation"
_LINEAR_LIKE = (
    nn.modules.conv._ConvNd,
    nn.Linear,
    nn.modules.batchnorm._NormBase,
    nn.GroupNorm,
    nn.LayerNorm,
)


@dataclass(frozen=True)
class Site:
    """Channel ``k`` of the group is ``output[output_index]`` at index ``index[k]`` along ``dim``, in the
    ``call``-th call of the module during one forward pass (a module may be called several times).
    ``index`` is ``(size, m)`` when each unit of the group is ``m`` tensor channels."""

    module: str
    call: int
    output_index: int
    dim: int
    index: np.ndarray
    post_activation: bool

    def channels(self, output: object) -> torch.Tensor:
        """The group's channels from a module output, moved to dim 1: (N, C, *rest) (N=1 if unbatched)."""
        t = output[self.output_index] if isinstance(output, tuple | list) else output
        x = t.movedim(self.dim, 1) if t.dim() > 1 else t.reshape(1, -1)
        x = x.index_select(1, torch.as_tensor(self.index.reshape(-1), device=x.device))
        if self.multiplicity == 1:
            return x
        n, size, m = x.shape[0], self.index.shape[0], self.multiplicity
        units = x.reshape(n, size, m, *x.shape[2:])  # a unit's m channels stacked along the next dim
        return units.reshape(n, size, m * x.shape[2], *x.shape[3:]) if x.dim() > 2 else units

    @property
    def multiplicity(self) -> int:
        """Tensor channels per unit of the group (1 but for units such as GroupNorm groups)."""
        return int(self.index.shape[1]) if self.index.ndim == 2 else 1


def find_sites(model: nn.Module, graph: ChannelGraph, group: ChannelGroup) -> list[Site]:
    """Every leaf-module output where ``group``'s channels can be read, in trace order."""
    modules = dict(model.named_modules())
    comp = graph.resolution.comp
    want = {int(c): k for k, c in enumerate(group.components.tolist())}
    sites: list[Site] = []
    for name, calls in graph.builder.module_calls.items():
        module = modules.get(name)
        if module is None or any(True for _ in module.children()):
            continue
        for call, outs in enumerate(calls):
            for oi, vid in enumerate(outs):
                site = _site_in_value(graph, vid, comp, want)
                if site is not None:
                    dim, index = site
                    post = not isinstance(module, _LINEAR_LIKE)
                    sites.append(Site(name, call, oi, dim, index, post))
    return sites


def _site_in_value(graph: ChannelGraph, vid: int, comp: np.ndarray, want: dict[int, int]):
    lab = graph.builder.values[vid].labels
    vary = [d for d, n in enumerate(lab.shape) if n > 1]
    if len(vary) != 1:
        return None
    d = vary[0]
    flat = lab.reshape(-1)
    comps = np.where(flat >= 0, comp[np.maximum(flat, 0)], -1)
    positions: list[list[int]] = [[] for _ in want]
    labels: list[list[int]] = [[] for _ in want]
    for pos, (c, label) in enumerate(zip(comps.tolist(), flat.tolist())):
        k = want.get(c)
        if k is not None:
            if label in labels[k]:
                return None  # one channel at two positions (e.g. repeated): not a clean site
            positions[k].append(pos)
            labels[k].append(label)
    counts = {len(p) for p in positions}
    if len(counts) != 1 or 0 in counts:
        return None  # a unit missing here, or units of unequal widths
    index = np.asarray(positions, dtype=np.int64)
    return d, (index[:, 0] if index.shape[1] == 1 else index)


def preferred_sites(sites: list[Site]) -> list[Site]:
    """Post-activation sites if there are any, else the last site (the channels' final form)."""
    post = [s for s in sites if s.post_activation]
    return post or sites[-1:]
