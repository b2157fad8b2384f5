"""Check a pruning against its definition: the pruned model computes what the masked original computes."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import nn

from netsculpt.errors import PruningError
from netsculpt.graph.channel_graph import ChannelGraph
from netsculpt.graph.tracing import as_tuple, training_branches_mode
from netsculpt.measure._inputs import tensor_leaves
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
    """Every floating-point tensor leaf of an output of any structure, as one vector."""
    leaves = [t.reshape(-1).double() for t in tensor_leaves(out) if t.is_floating_point()]
    return torch.cat(leaves) if leaves else torch.zeros(0, dtype=torch.float64)


def pruning_error(
    model: nn.Module, graph: ChannelGraph, plan: PrunePlan, inputs: Any, *, training: bool = False
) -> float:
    """Relative L2 error between the pruned model and the masked original on ``inputs`` (eval mode;
    ``training=True``: train mode's branches with eval-mode norms and dropout, so auxiliary heads count).

    Outputs may be of any structure (tuples, lists, dicts): their floating-point tensor leaves are
    compared together. Outputs whose structure depends on values (a detector's boxes after score
    thresholds and NMS) can differ in length; compare the head's raw outputs then (docs/engine.md).
    """
    reference = mask_(copy.deepcopy(model), graph, plan).eval()
    pruned = apply_plan_(copy.deepcopy(model), graph, plan).eval()
    if training:
        training_branches_mode(reference)
        training_branches_mode(pruned)
    with torch.no_grad():
        a = _flat(reference(*as_tuple(inputs)))
        b = _flat(pruned(*as_tuple(inputs)))
    if a.shape != b.shape:
        raise PruningError(
            f"the pruned model's outputs hold {b.numel()} numbers, the masked original's {a.numel()}: their "
            "structure depends on the values (e.g. detections kept after a score threshold); compare raw "
            "head outputs with a forward hook instead"
        )
    return float((a - b).norm() / a.norm().clamp_min(1e-12))
