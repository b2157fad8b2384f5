"""Sensitivity analysis: prune one group at a time, read the damage, allocate ratios from the curves.

Each group is pruned alone at every ratio of ``config.ratios`` (the rest of the network untouched) and
scored on the held-out batches without fine-tuning: one curve per group of how much the metric worsens
as the group loses channels. Allocation then prunes "layer by layer according to the sensitivity of
each layer" (as Li et al. 2017 and the genetic-algorithm paper do): every group is pruned as far as its
curve stays within one damage threshold, and the threshold is found by bisection so the cost meets the
target; a last pass gives single channels back to the most sensitive groups while the target allows.
"""

from __future__ import annotations

import numpy as np

from netsculpt.errors import PruningError
from netsculpt.search.config import SensitivityConfig
from netsculpt.search.scoring import MethodOutput, SearchContext


def run(ctx: SearchContext) -> MethodOutput:
    config: SensitivityConfig = ctx.config
    space, scorer = ctx.space, ctx.scorer
    full = space.full()
    (base,) = scorer.score([full])
    curves: dict[str, list[dict[str, float]]] = {}
    for i, gid in enumerate(space.ids):
        candidates = []
        for ratio in config.ratios:
            c = full.astype(np.float64)
            c[i] *= 1 - ratio
            candidates.append(space.clip(c))
        evaluations = scorer.score(candidates)
        curves[gid] = [
            {"ratio": 1 - float(c[i]) / space.sizes[i], "accuracy": e.accuracy, "loss": e.loss}
            for c, e in zip(candidates, evaluations)
        ]
        ctx.checkpoint({"groups_done": i + 1, "curves": curves})
        ctx.say(f"sensitivity {i + 1}/{len(space)}: {gid}")
    base_value = scorer.value(base)
    envelopes = [_envelope(curves[gid], ctx.config.metric, base_value) for gid in space.ids]
    picks, allocation = {}, {}
    for target in ctx.targets:
        counts, tau = allocate(ctx, envelopes, target.metric, target.value)
        picks[target.label] = counts
        allocation[target.label] = {"threshold": tau, "widths": space.widths(counts)}
    history = {
        "base": {"accuracy": base.accuracy, "loss": base.loss},
        "metric": config.metric,
        "curves": curves,
        "allocation": allocation,
    }
    return MethodOutput(picks, history, {"sensitivity": {"base": history["base"], "curves": curves}})


def _envelope(curve: list[dict[str, float]], metric: str, base: float) -> tuple[np.ndarray, np.ndarray]:
    """(ratios, damage) from ratio 0 (no damage), made non-decreasing: pruning a group further is never
    assumed to help, so a lucky dip on a few batches cannot pull a group's allocation past a bad point."""
    ratios = np.array([0.0] + [p["ratio"] for p in curve])
    values = [p["loss"] if metric == "loss" else 1 - p["accuracy"] for p in curve]
    damage = np.maximum.accumulate(np.array([0.0] + [v - base for v in values]))
    return ratios, np.maximum(damage, 0.0)


def _ratio_at(envelope: tuple[np.ndarray, np.ndarray], tau: float) -> float:
    """The largest pruning ratio whose (linearly interpolated) damage is at most ``tau``."""
    ratios, damage = envelope
    inside = np.flatnonzero(damage <= tau)
    j = int(inside[-1])
    if j == len(ratios) - 1:
        return float(ratios[j])
    rise = damage[j + 1] - damage[j]
    return float(ratios[j] + (ratios[j + 1] - ratios[j]) * ((tau - damage[j]) / rise if rise > 0 else 0.0))


def allocate(
    ctx: SearchContext, envelopes: list[tuple[np.ndarray, np.ndarray]], metric: str, value: float
) -> tuple[np.ndarray, float]:
    """Widths meeting ``metric <= value`` from the damage curves, and the damage threshold used."""
    space = ctx.space

    def widths(tau: float) -> np.ndarray:
        return space.from_ratios([1 - _ratio_at(env, tau) for env in envelopes])

    lo, hi = 0.0, float(max(env[1][-1] for env in envelopes)) + 1e-9
    if space.cost(widths(hi), metric) > value:
        raise PruningError(
            f"target {metric}={value:.3f} is out of reach of the measured ratios (up to "
            f"{max(ctx.config.ratios):.0%} per group); add larger ratios or lower min_ratio"
        )
    best = widths(hi)
    for _ in range(50):
        mid = (lo + hi) / 2
        counts = widths(mid)
        if space.cost(counts, metric) <= value:
            hi, best = mid, counts
        else:
            lo = mid
    # Give channels back first where removing the next tenth would hurt most.
    nxt = [np.interp(min(1.0, 1 - c / s + 0.1), *env) for c, s, env in zip(best, space.sizes, envelopes)]
    best = space.top_up(best, metric, value, ctx.config.tolerance, list(np.argsort(nxt)[::-1]))
    return best, hi
