"""Greedy slimming (AutoSlim-style): repeatedly take a chunk of channels from the group whose removal
costs the least per unit of cost saved.

AutoSlim (Yu & Huang, 2019) slims a trained network step by step, each time shrinking the layer whose
narrowing hurts held-out accuracy least, and reads off the architecture at each resource budget from
the one trajectory. Without a slimmable network every trial is a pruned copy scored on a few held-out
batches; the step is ``config.step`` of a group's original width. The damage is divided by the cost the
step saves (MACs, parameters or predicted milliseconds), so a cheap-to-remove wide layer is not chosen
over a costly one just because it saves more. The trajectory strictly decreases in cost.
"""

from __future__ import annotations

import numpy as np

from netsculpt.errors import PruningError
from netsculpt.search.config import GreedyConfig
from netsculpt.search.scoring import MethodOutput, SearchContext


def run(ctx: SearchContext) -> MethodOutput:
    config: GreedyConfig = ctx.config
    space, scorer, metric = ctx.space, ctx.scorer, ctx.metric
    counts = space.full()
    (current,) = scorer.score([counts])
    cost = space.cost(counts, metric)
    lowest = min(t.value for t in ctx.targets)
    trajectory = [_point(ctx, 0, counts, cost, current, None)]
    removed_order: list[int] = []
    # at least one step of the group's width grid (round_to): a smaller chunk is rounded back up by clip,
    # and greedy stood still at full size ("stopped at macs=1.000") under round_to hw / 16
    chunks = np.maximum(np.round(config.step * space.sizes), space.steps).astype(np.int64)
    while cost > lowest:
        trials, groups = [], []
        for i in range(len(space)):
            c = counts.copy()
            c[i] = max(space.floors[i], counts[i] - chunks[i])
            c = space.clip(c)
            if c[i] < counts[i]:
                trials.append(c)
                groups.append(i)
        if not trials:
            ctx.say(f"greedy: every group is at its floor at {metric}={cost:.3f}; stopping")
            break
        evaluations = scorer.score(trials)
        best = None
        for c, i, ev in zip(trials, groups, evaluations):
            saved = cost - space.cost(c, metric)
            if saved <= 0:  # possible for latency only (table noise): never a step that saves nothing
                continue
            penalty = (scorer.value(ev) - scorer.value(current)) / saved
            if best is None or penalty < best[0]:
                best = (penalty, c, i, ev, cost - saved)
        if best is None:
            ctx.say(f"greedy: no step lowers {metric} below {cost:.3f}; stopping")
            break
        _, counts, group, current, cost = best
        removed_order.append(group)
        trajectory.append(_point(ctx, len(trajectory), counts, cost, current, space.ids[group]))
        ctx.checkpoint({"step": len(trajectory) - 1, "trajectory": trajectory})
        ctx.say(f"greedy step {len(trajectory) - 1}: {space.ids[group]} -> {metric}={cost:.3f}")
    picks = {}
    for target in ctx.targets:
        point = next((p for p in trajectory if p["cost"][metric] <= target.value), None)
        if point is None:
            raise PruningError(
                f"greedy slimming stopped at {metric}={cost:.3f} (no step lowers it further) and cannot "
                f"meet {target.label}; lower min_ratio or aim higher (its trajectory is saved in the state)"
            )
        chosen = np.array([point["widths"][gid] for gid in space.ids], dtype=np.int64)
        # Channel chunks overshoot the target; give single steps back, most recently slimmed group first.
        priority = list(dict.fromkeys(reversed(removed_order))) + list(range(len(space)))
        picks[target.label] = space.top_up(
            chosen, metric, target.value, config.tolerance, list(dict.fromkeys(priority))
        )
    history = {"metric": config.metric, "cost": metric, "trajectory": trajectory}
    return MethodOutput(picks, history, {"trajectory": trajectory})


def _point(ctx: SearchContext, step: int, counts: np.ndarray, cost: float, ev, group: str | None) -> dict:
    return {
        "step": step,
        "group": group,
        "widths": ctx.space.widths(counts),
        "cost": {**ctx.space.costs(counts), ctx.metric: cost},
        "accuracy": ev.accuracy,
        "loss": ev.loss,
    }
