"""Predict a plan's MACs and parameters without touching the model.

A conv or linear layer's MACs are its weight's element count times the number of output positions it is
applied at, and channel pruning never changes those positions. So MACs after pruning follow from the new
weight sizes exactly: ``macs = fixed + sum(rate_w * numel(w_after))``, where ``rate_w`` is measured once.
MACs not tied to a weight (activation x activation products) are kept as a fixed part.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import nn

from netsculpt.graph.channel_graph import ChannelGraph


@dataclass
class _Slot:
    """A (tensor, dim) that shrinks when channels of some groups go: ``size - sum(counts[removed])``."""

    size: int
    parts: list[tuple[int, np.ndarray]]  # (group index, positions per channel of that group)


def _mac_weights(module: nn.Module | None) -> list[str]:
    """The module's own parameters its MACs are proportional to: ``weight``, or every weight matrix of a
    recurrent layer (each step multiplies by all of them: ``tokens * sum(numel)``, measure/macs.py)."""
    if isinstance(module, nn.RNNBase):
        return [n for n, p in module.named_parameters(recurse=False) if n.startswith("weight_")]
    return ["weight"] if isinstance(getattr(module, "weight", None), nn.Parameter) else []


class CostModel:
    """MACs and parameter counts of any plan over ``graph``, in microseconds per evaluation."""

    def __init__(self, model: nn.Module, graph: ChannelGraph, example_inputs: Any) -> None:
        from netsculpt.measure import count_macs

        self.groups = graph.groups
        self.index = {g.id: i for i, g in enumerate(graph.groups)}
        params = dict(model.named_parameters())
        total_macs, layers = count_macs(model, example_inputs)
        slots: dict[tuple[str, int], _Slot] = {}
        for gi, g in enumerate(graph.groups):
            for m in g.members:
                if m.name not in params:
                    continue
                counts = np.bincount(m.channels, minlength=g.size)
                slot = slots.setdefault((m.name, m.dim), _Slot(params[m.name].shape[m.dim], []))
                slot.parts.append((gi, counts))
        self.tensors: list[tuple[tuple[int, ...], list[tuple[int, _Slot]]]] = []
        for name, p in params.items():
            dims = [(d, slots[(name, d)]) for d in range(p.dim()) if (name, d) in slots]
            self.tensors.append((tuple(p.shape), dims))
        self.names = list(params)
        # MACs attributed to each layer's weight: rate = layer MACs / weight numel
        modules = dict(model.named_modules())
        self.rates = np.zeros(len(self.names))
        attributed = 0
        for layer in layers:
            prefix = f"{layer.name}." if layer.name else ""
            keys = [prefix + n for n in _mac_weights(modules.get(layer.name)) if prefix + n in self.names]
            numel = sum(params[k].numel() for k in keys)
            if layer.macs and numel:
                for k in keys:
                    self.rates[self.names.index(k)] = layer.macs / numel
                attributed += layer.macs
        self.fixed_macs = total_macs - attributed
        self.base_macs = total_macs
        self.base_params = sum(p.numel() for p in params.values())

    def removed_masks(self, keep: dict[str, list[int]]) -> list[np.ndarray | None]:
        masks: list[np.ndarray | None] = [None] * len(self.groups)
        for gid, kept in keep.items():
            i = self.index.get(gid)
            if i is None:
                continue
            mask = np.ones(self.groups[i].size, dtype=bool)
            mask[np.asarray(kept, dtype=np.int64)] = False
            masks[i] = mask
        return masks

    def numels(self, keep: dict[str, list[int]]) -> np.ndarray:
        masks = self.removed_masks(keep)
        out = np.empty(len(self.tensors))
        for t, (shape, dims) in enumerate(self.tensors):
            size = np.prod(shape, dtype=np.float64)
            for d, slot in dims:
                removed = sum(
                    int(counts[masks[gi]].sum()) for gi, counts in slot.parts if masks[gi] is not None
                )
                if removed:
                    size = size / shape[d] * (shape[d] - removed)
            out[t] = size
        return out

    def macs(self, keep: dict[str, list[int]]) -> float:
        return float(self.fixed_macs + self.rates @ self.numels(keep))

    def params(self, keep: dict[str, list[int]]) -> float:
        return float(self.numels(keep).sum())

    def fraction(self, keep: dict[str, list[int]], metric: str) -> float:
        """Cost after ``keep`` as a fraction of the unpruned model's ("macs" or "params")."""
        if metric == "macs":
            return self.macs(keep) / self.base_macs
        return self.params(keep) / self.base_params
