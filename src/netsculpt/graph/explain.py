"""Why a pruned model kept its cost: the layers holding the most remaining MACs, with the engine's reason.

A pruning that leaves 0.9x of the MACs is a question, not an answer. ``pinned_macs`` ranks the layers
of the *pruned* model by MACs and names, for each one whose output or input channels are pinned, the
reason the engine gave for that group (``normalises over these channels``, ``it is a network
output``, ...), so a sweep or a report can print the why beside the ratio.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from netsculpt.graph.channel_graph import ChannelGraph
from netsculpt.graph.groups import ChannelGroup


class _Layer(Protocol):
    name: str
    macs: int


@dataclass(frozen=True)
class PinnedCost:
    """One layer's share of the remaining MACs and why its channels could not go."""

    layer: str
    share: float
    reason: str

    def __str__(self) -> str:
        return f"`{self.layer}` ({self.share:.0%} of MACs): {self.reason}"


def _weight_groups(graph: ChannelGraph) -> dict[tuple[str, str], ChannelGroup]:
    """``(tensor, "out" | "in")`` -> its group, by the member's role, not its dim: a transposed weight
    (Hugging Face's ``Conv1D``, ``ConvTranspose``) keeps its outputs in dim 1."""
    return {(m.name, m.role): g for g in graph.groups for m in g.members if m.role in ("out", "in")}


def pinned_macs(graph: ChannelGraph, layers: Iterable[_Layer], top: int = 3) -> list[PinnedCost]:
    """The ``top`` costliest layers whose weight's output or input channels are pinned.

    ``layers`` are the pruned model's ``LayerMetrics`` (``count_macs``); ``graph`` is the trace the
    plan was made from. Layers with MACs but no weight in any group (attention's matmuls, counted in
    their block) are reported with the reason of the costliest pinned weight layer inside them.
    """
    layers = list(layers)
    total = sum(layer.macs for layer in layers) or 1
    groups = _weight_groups(graph)
    found: list[PinnedCost] = []
    for layer in sorted(layers, key=lambda layer: -layer.macs):
        if layer.macs <= 0:
            break
        reasons = []
        for role, side in (("out", "output"), ("in", "input")):
            g = groups.get((f"{layer.name}.weight" if layer.name else "weight", role))
            if g is not None and g.n_prunable < g.size and g.reasons:
                reasons.append(f"{side} channels pinned: {g.reasons[0]}")
        if not reasons:
            inner = [
                g
                for (name, _), g in groups.items()
                if name.startswith(f"{layer.name}.") and g.n_prunable < g.size and g.reasons
            ]
            if not inner:
                continue
            reasons.append(f"its channels are pinned: {inner[0].reasons[0]}")
        found.append(PinnedCost(layer.name or "<root>", layer.macs / total, "; ".join(reasons)))
        if len(found) >= top:
            break
    return found
