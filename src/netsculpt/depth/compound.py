"""Compound scaling down (EfficientNet's rule run backwards): depth, width and resolution together.

MACs scale about as ``d · w² · r²``; with ``d = α^φ, w = β^φ, r = γ^φ`` and ``α·β²·γ² ≈ 2`` a MACs
budget ``t`` gives ``φ = log2(t) < 0``. Around that point a small grid of resolutions and depths is
tried; for each, blocks are removed per stage (lowest block scores first, at least one block kept per
stage) and the width that meets the budget at that resolution is found by ``ns.prune``'s MACs target.
The candidate closest to the compound rule that meets the budget (measured MACs, not the formula) wins.
The returned input size is what every later stage must feed the model (the recipe records it): every
spatial dim scaled by the same factor, so a 24x64 input stays 3:8 and a sequence (N, C, L) scales L. A
model without removable residual blocks (VGG, SqueezeNet, DenseNet) is scaled in width x resolution only.

MACs are not time: at batch 1 on a CPU a thin deep network is overhead-bound, so the rule's point (which
keeps ~80 % of the depth at 0.5x MACs) saves little latency. With ``latency=`` (a fraction of the
original's measured batch-1 latency) the depth grid reaches further down, every candidate that meets the
MACs budget is timed beside the original (interleaved, median), and only those under the latency cap
compete: the rule's point moved as little as the measured budget needs.
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
from netsculpt.progress import info

ALPHA, BETA, GAMMA = 1.2, 1.1, 1.15  # EfficientNet-B0's grid-searched coefficients (α·β²·γ² ≈ 1.92)


INTERPOLATION = {1: "linear", 2: "bilinear", 3: "trilinear"}  # by the number of spatial dims


@dataclass
class CompoundResult:
    model: nn.Module
    resolution: tuple[int, ...]  # the spatial input shape the model now takes: (L,), (H, W) or (D, H, W)
    depth: float  # fraction of blocks kept
    width: float  # MACs fraction given to width pruning at the new resolution
    macs: float  # measured MACs fraction of the original at its resolution
    removed: list[str]
    candidates: list[dict[str, Any]]
    latency: float | None = None  # measured latency fraction of the original (with ``latency=``)


LATENCY_DEPTHS = (1.15, 1.0, 0.85, 0.7, 0.55, 0.4, 0.25)  # depth factors tried under a latency cap


def latency_ratio(small: nn.Module, x: torch.Tensor, base: nn.Module, bx: torch.Tensor, runs: int) -> float:
    """``small``'s batch-1 latency over ``base``'s: five interleaved rounds of ``runs`` forwards each, the
    fastest round of each model compared. On a shared machine a round is slowed by whatever else runs,
    never sped up, so the minimum is the figure least moved by load (a median of rounds was not)."""
    from netsculpt.measure.latency import measure_latency

    small_ms, base_ms = [], []
    for _ in range(5):
        base_ms.append(measure_latency(base, bx, runs=runs))
        small_ms.append(measure_latency(small, x, runs=runs))
    return min(small_ms) / min(base_ms)


def compound_point(macs: float) -> tuple[float, float, float]:
    """(d, w, r) of the compound rule for a MACs fraction ``macs`` (φ = log(macs) / log(α·β²·γ²))."""
    phi = math.log(macs) / math.log(ALPHA * BETA**2 * GAMMA**2)
    return ALPHA**phi, BETA**phi, GAMMA**phi


def _spatial_shape(example_inputs: Any) -> tuple[int, ...]:
    """The dims compound scaling resizes; anything but one (N, C, *spatial) tensor is refused here, not
    in ``interpolate``."""
    if not isinstance(example_inputs, torch.Tensor) or example_inputs.dim() - 2 not in INTERPOLATION:
        got = (
            tuple(example_inputs.shape) if isinstance(example_inputs, torch.Tensor) else type(example_inputs)
        )
        raise PruningError(
            f"compound scaling resizes one input tensor of shape (N, C, L), (N, C, H, W) or (N, C, D, H, W), "
            f"got {got}: prune width (ns.prune) or depth (ns.prune_depth) of this model instead"
        )
    return tuple(int(s) for s in example_inputs.shape[2:])


def _scaled(shape: tuple[int, ...], factor: float, step: int) -> tuple[int, ...]:
    """Every dim times ``factor``, to a multiple of ``step`` (at least ``step``)."""
    return tuple(max(step, round(s * factor / step) * step) for s in shape)


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
    latency: float | None = None,
    runs: int = 20,
) -> CompoundResult:
    """Reach ``target`` (MACs) with depth × width × resolution, and with ``latency=`` also a measured
    batch-1 latency cap (fraction of the original, torch's current thread count); see the module
    docstring. Raises :class:`BudgetError` with the closest value when no candidate meets both."""
    from netsculpt.measure.macs import count_macs
    from netsculpt.prune import prune

    if target.metric != "macs":
        raise PruningError(
            "compound scaling takes Target(macs=...): the rule is written in MACs; give a latency budget "
            "as latency=<fraction of the original's measured latency> beside it"
        )
    if latency is not None and not 0.0 < latency <= 1.0:
        raise PruningError(f"latency={latency!r} must be a fraction in (0, 1] of the original's latency")
    spatial = _spatial_shape(example_inputs)
    base_macs, _ = count_macs(model, example_inputs)
    d0, _, r0 = compound_point(target.value)
    graph = trace(model, example_inputs)
    depth_grid = grid if latency is None else LATENCY_DEPTHS
    scores: dict[str, float] = {}
    if any(u.removable for u in graph.blocks):
        scores = plan_depth(
            model, example_inputs, blocks=1, criterion=depth_criterion, data=data, graph=graph
        ).scores
    else:  # nothing to remove: the depth axis is fixed at 1 and width x resolution meet the budget
        info("compound: no removable residual blocks; scaling width x resolution only (depth kept)")
        depth_grid = (1.0 / d0,)
    best, candidates = None, []
    for fr in grid:
        res = _scaled(spatial, r0 * fr, resolution_step)
        scale = math.prod(r / s for r, s in zip(res, spatial)) ** (1 / len(spatial))
        for fd in depth_grid:
            depth = min(1.0, d0 * fd)
            x = torch.nn.functional.interpolate(
                example_inputs, size=res, mode=INTERPOLATION[len(spatial)], align_corners=False
            )
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
            rule = abs(math.log(kept / d0)) + abs(math.log(scale / r0))
            depth = kept
            row = {"resolution": list(res), "depth": depth, "width": min(width, 1.0), "macs": macs}
            candidates.append(row)
            if macs > target.value * 1.02 or (best is not None and rule >= best[0]):
                continue
            lat = None
            if latency is not None:
                lat = row["latency"] = latency_ratio(small, x, model, example_inputs, runs)
                if lat > latency:
                    continue
            names = [b["name"] for b in blocks]
            best = (rule, CompoundResult(small, res, depth, min(width, 1.0), macs, names, [], lat))
    if best is None:
        metric, value = "macs", target.value
        timed = [c["latency"] for c in candidates if "latency" in c]
        if timed:
            metric, value = "latency", latency
        closest = min(timed or [c["macs"] for c in candidates], default=float("nan"))
        raise BudgetError(
            f"no depth x width x resolution candidate reaches {metric}={value}; closest {closest:.3f}",
            closest,
        )
    best[1].candidates = candidates
    return best[1]
