"""Compound scaling down (EfficientNet's rule run backwards): depth, width and resolution together.

MACs scale about as ``d · w² · r²``; with ``d = α^φ, w = β^φ, r = γ^φ`` and ``α·β²·γ² ≈ 2`` a MACs
budget ``t`` gives ``φ = log2(t) < 0``. Around that point a small grid of resolutions and depths is
tried; for each, blocks are removed per stage (lowest block scores first, at least one block kept per
stage) and the width that meets the budget at that resolution is found by ``ns.prune``'s MACs target.
The candidate closest to the compound rule that meets the budget (measured MACs, not the formula) wins.
The returned input size is what every later stage must feed the model (the recipe records it).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from netsculpt.allocate import Target
from netsculpt.depth.api import BudgetError, plan_depth, remove_blocks
from netsculpt.errors import PruningError
from netsculpt.graph import trace

ALPHA, BETA, GAMMA = 1.2, 1.1, 1.15  # EfficientNet-B0's grid-searched coefficients (α·β²·γ² ≈ 1.92)


@dataclass
class CompoundResult:
    model: nn.Module
    resolution: int
    depth: float  # fraction of blocks kept
    width: float  # MACs fraction given to width pruning at the new resolution
    macs: float  # measured MACs fraction of the original at its resolution
    removed: list[str]
    candidates: list[dict[str, float]]


def compound_point(macs: float) -> tuple[float, float, float]:
    """(d, w, r) of the compound rule for a MACs fraction ``macs`` (φ = log(macs) / log(α·β²·γ²))."""
    phi = math.log(macs) / math.log(ALPHA * BETA**2 * GAMMA**2)
    return ALPHA**phi, BETA**phi, GAMMA**phi


def _blocks_to_remove(graph: Any, scores: dict[str, float], depth: float) -> list[dict[str, Any]]:
    by_stage: dict[str, list] = defaultdict(list)
    for u in graph.blocks:
        by_stage[u.stage].append(u)
    chosen = []
    for units in by_stage.values():
        keep = max(1, round(depth * len(units)))
        removable = sorted((u for u in units if u.removable), key=lambda u: (scores.get(u.name, 0.0), u.name))
        chosen += [u.to_dict() for u in removable[: max(0, len(units) - keep)]]
    return chosen


def compound_scale(
    model: nn.Module,
    example_inputs: torch.Tensor,
    *,
    target: Target,
    criterion: str = "l1",
    depth_criterion: str = "output_change",
    data: Any = None,
    resolution_step: int = 4,
    grid: tuple[float, ...] = (0.85, 1.0, 1.15),
) -> CompoundResult:
    """Reach ``target`` (MACs) with depth × width × resolution; see the module docstring."""
    from netsculpt.measure.macs import count_macs
    from netsculpt.prune import prune

    if target.metric != "macs":
        raise PruningError("compound scaling takes Target(macs=...): the rule is written in MACs")
    base_macs, _ = count_macs(model, example_inputs)
    side = example_inputs.shape[-1]
    d0, _, r0 = compound_point(target.value)
    graph = trace(model, example_inputs)
    scores = plan_depth(
        model, example_inputs, blocks=1, criterion=depth_criterion, data=data, graph=graph
    ).scores
    best, candidates = None, []
    for fr in grid:
        res = max(resolution_step, round(side * r0 * fr / resolution_step) * resolution_step)
        for fd in grid:
            depth = min(1.0, d0 * fd)
            x = torch.nn.functional.interpolate(example_inputs, size=(res, res), mode="bilinear")
            blocks = _blocks_to_remove(graph, scores, depth)
            deep = remove_blocks(model, blocks) if blocks else model
            now, _ = count_macs(deep, x)
            width = target.value * base_macs / now
            if width > 1:
                small = deep
            else:
                try:
                    small = prune(deep, x, criterion=criterion, target=Target(macs=width), data=data)
                except (BudgetError, PruningError):
                    continue
            macs = count_macs(small, x)[0] / base_macs
            kept = 1 - len(blocks) / max(1, len(graph.blocks))  # the depth actually reached
            rule = abs(math.log(kept / d0)) + abs(math.log(res / (side * r0)))
            depth = kept
            candidates.append({"resolution": res, "depth": depth, "width": min(width, 1.0), "macs": macs})
            if macs <= target.value * 1.02 and (best is None or rule < best[0]):
                best = (
                    rule,
                    CompoundResult(small, res, depth, min(width, 1.0), macs, [b["name"] for b in blocks], []),
                )
    if best is None:
        closest = min((c["macs"] for c in candidates), default=float("nan"))
        raise BudgetError(
            f"no depth x width x resolution candidate reaches macs={target.value}; closest {closest:.3f}",
            closest,
        )
    best[1].candidates = candidates
    return best[1]
