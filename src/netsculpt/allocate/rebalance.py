"""Bring a plan up to its target on the width grid: give steps back, and trade them between groups.

:func:`top_up` gives back the best removed channels one grid step at a time while the cost stays under
the target: channel granularity otherwise leaves a plan several percent under it. On the ``"hw"`` grid a
group moves in steps of 8 or 16 channels. When one step of a heavily shared group (a residual stage of an
already pruned network, say 16 -> 8 channels) is worth more than the budget left, the ranked-prefix solve
lands several percent under the target and :func:`top_up` cannot fix it: every step it could return
overshoots. :func:`rebalance` then returns a step to one group *and* takes the least important steps of
the others away until the plan fits again; the trade is kept when it lands closer to the target. Widths
stay on the grid.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from netsculpt.allocate.widths import next_width
from netsculpt.graph.channel_graph import ChannelGraph
from netsculpt.graph.groups import ChannelGroup

Keep = dict[str, list[int]]


def _normalised(scores: np.ndarray, channels: list[int]) -> float:
    return float(np.mean(scores[channels]) / (np.abs(scores).mean() + 1e-12))


def _grow_step(g: ChannelGroup, kept: list[int], step: int, scores: np.ndarray) -> list[int] | None:
    """The best removed channels that bring ``kept`` up to the next width on the grid, or None."""
    kept_set = set(kept)
    removed = [i for i in range(g.size) if i not in kept_set]
    need = next_width(len(kept), step, g.size) - len(kept)
    if not removed or len(removed) < need:
        return None
    return sorted(removed, key=lambda i: -scores[i])[:need]


def top_up(
    graph: ChannelGraph,
    scores: dict[str, np.ndarray],
    keep: Keep,
    measure: Callable[[Keep], float],
    goal: float,
    tolerance: float,
    steps: dict[str, int],
) -> Keep:
    """Give back the best removed channels, one group step at a time (to the next width on the group's
    grid, the group whose step scores highest first), while the cost stays <= goal."""
    keep = {k: list(v) for k, v in keep.items()}
    for _ in range(10_000):
        if measure(keep) >= goal * (1 - tolerance / 4):
            break
        candidates = []
        for gid, kept in keep.items():
            best = _grow_step(graph.group(gid), kept, steps.get(gid, 1), scores[gid])
            if best is not None:
                candidates.append((-_normalised(scores[gid], best), gid, best))
        accepted = False
        for _, gid, best in sorted(candidates):
            trial = dict(keep)
            trial[gid] = sorted(keep[gid] + best)
            if measure(trial) <= goal:
                keep = trial
                accepted = True
                break
        if not accepted:
            break
    return {k: v for k, v in keep.items() if len(v) < graph.group(k).size}


def _shrink_step(
    g: ChannelGroup, kept: list[int], step: int, floor: int, scores: np.ndarray
) -> list[int] | None:
    """The least important kept, prunable channels whose removal brings ``kept`` down one grid width."""
    n = len(kept)
    target = n - (n % step or step)
    if target < floor:
        return None
    prunable = [i for i in kept if g.prunable[i]]
    if len(prunable) < n - target:
        return None
    return sorted(prunable, key=lambda i: (scores[i], -i))[: n - target]


def rebalance(
    graph: ChannelGraph,
    scores: dict[str, np.ndarray],
    keep: Keep,
    measure: Callable[[Keep], float],
    goal: float,
    tolerance: float,
    steps: dict[str, int],
    floors: dict[str, int],
    rounds: int = 8,
) -> Keep:
    """``keep`` moved closer to ``goal`` (never above it) by trading grid steps between groups.

    Only runs when ``keep`` lands more than ``tolerance`` under ``goal``; each round tries returning one step
    to every group, sheds the least important steps elsewhere until the plan fits, gives back what fits
    again, and keeps the best trade. Costs about ``groups x shed steps`` evaluations of ``measure`` per round.
    """
    groups = {g.id: g for g in graph.prunable_groups}
    full = {gid: list(range(g.size)) for gid, g in groups.items()}
    current = {**full, **{k: list(v) for k, v in keep.items()}}
    value = measure(current)
    for _ in range(rounds):
        if value >= goal * (1 - tolerance / 4):  # as close as top_up aims
            break
        best, best_value = None, value
        for gid, g in groups.items():
            grown = _grow_step(g, current[gid], steps.get(gid, 1), scores[gid])
            if grown is None:
                continue
            trial = dict(current)
            trial[gid] = sorted(current[gid] + grown)
            trial = _shed(groups, scores, trial, measure, goal, tolerance, steps, floors, exclude=gid)
            if trial is None:
                continue
            # shedding overshoots: giving steps back refills
            trial = {**full, **top_up(graph, scores, trial, measure, goal, tolerance, steps)}
            trial_value = measure(trial)
            if best_value < trial_value <= goal:
                best, best_value = trial, trial_value
        if best is None:
            break
        current, value = best, best_value
    return {gid: v for gid, v in current.items() if len(v) < groups[gid].size}


def _shed(
    groups: dict[str, ChannelGroup],
    scores: dict[str, np.ndarray],
    keep: Keep,
    measure: Callable[[Keep], float],
    goal: float,
    tolerance: float,
    steps: dict[str, int],
    floors: dict[str, int],
    exclude: str,
) -> Keep | None:
    """Remove the least important grid steps of groups other than ``exclude`` until ``keep`` fits.

    Steps that would drop the plan below the tolerance band are taken only when no other step is left:
    one step of a wide layer shed first (LeNet-5's 16 -> 8 ``conv1`` in a pruned net) left the trade far
    under the goal, and what it had to fill the gap with (16-channel steps of ``fc1``) lay under it."""
    keep = dict(keep)
    while measure(keep) > goal:
        options = []
        for gid, g in groups.items():
            if gid == exclude:
                continue
            drop = _shrink_step(g, keep[gid], steps.get(gid, 1), floors[gid], scores[gid])
            if drop is not None:
                dropped = set(drop)
                shrunk = [i for i in keep[gid] if i not in dropped]
                under = measure({**keep, gid: shrunk}) < goal * (1 - tolerance)
                options.append((under, _normalised(scores[gid], drop), gid, shrunk))
        if not options:
            return None
        *_, gid, shrunk = min(options)
        keep[gid] = shrunk
    return keep
