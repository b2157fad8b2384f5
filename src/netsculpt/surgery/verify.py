"""Check a pruning against its definition: the pruned model computes what the masked original computes."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import nn

from netsculpt.graph.channel_graph import ChannelGraph
from netsculpt.graph.tracing import as_tuple
from netsculpt.surgery.apply import apply_plan_, mask_
from netsculpt.surgery.plan import PrunePlan


def random_plan(graph: ChannelGraph, ratio: float, seed: int = 0) -> PrunePlan:
    """Remove ``floor(ratio * size)`` random prunable channels of every group (at least one kept)."""
    rng = np.random.default_rng(seed)
    keep: dict[str, list[int]] = {}
    for g in graph.prunable_groups:
        candidates = np.flatnonzero(g.prunable)
        n = min(int(ratio * g.size), candidates.size, g.size - 1)
        if n > 0:
            removed = set(rng.choice(candidates, n, replace=False).tolist())
            keep[g.id] = [i for i in range(g.size) if i not in removed]
    return PrunePlan(keep, {g.id: g.size for g in graph.groups}, {"criterion": "random", "ratio": ratio})


def _flat(out: Any) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out.reshape(-1)
    if isinstance(out, dict):
        out = list(out.values())
    return torch.cat([_flat(o) for o in out])


def pruning_error(model: nn.Module, graph: ChannelGraph, plan: PrunePlan, inputs: Any) -> float:
    """Relative L2 error between the pruned model and the masked original on ``inputs`` (eval mode)."""
    reference = mask_(copy.deepcopy(model), graph, plan).eval()
    pruned = apply_plan_(copy.deepcopy(model), graph, plan).eval()
    with torch.no_grad():
        a = _flat(reference(*as_tuple(inputs)))
        b = _flat(pruned(*as_tuple(inputs)))
    return float((a - b).norm() / a.norm().clamp_min(1e-12))
