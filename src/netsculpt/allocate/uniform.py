"""Uniform allocation: every prunable group loses the same fraction of its channels."""

from __future__ import annotations

import numpy as np

from netsculpt.errors import PruningError
from netsculpt.graph.channel_graph import ChannelGraph
from netsculpt.graph.groups import ChannelGroup
from netsculpt.surgery.plan import PrunePlan


def check_ratio(ratio: float) -> float:
    if not isinstance(ratio, int | float) or not 0.0 <= float(ratio) < 1.0:
        raise PruningError(f"ratio must be in [0, 1) (the fraction of channels to remove), got {ratio!r}")
    return float(ratio)


def keep_count(group: ChannelGroup, n_remove: int, *, round_to: int = 1, min_channels: int = 1) -> int:
    """How many channels ``group`` keeps when asked to drop ``n_remove``, honouring pinned channels,
    ``min_channels`` and keeping a multiple of ``round_to`` where the group allows it."""
    floor = max(group.size - group.n_prunable, min(min_channels, group.size), 1)
    keep = max(group.size - n_remove, floor)
    if round_to > 1:
        rounded = int(np.ceil(keep / round_to) * round_to)
        keep = min(rounded, group.size)
    return keep


def removal_order(group: ChannelGroup, scores: np.ndarray) -> np.ndarray:
    """Channels least important first; pinned ones last. Equal scores (a dead layer scores all zeros)
    remove the highest-numbered channel first, so ties always keep the same, lowest-numbered channels."""
    return np.lexsort((-np.arange(group.size), np.where(group.prunable, scores, np.inf)))


def select_keep(group: ChannelGroup, scores: np.ndarray, keep: int) -> list[int]:
    """Keep the ``keep`` best channels; pinned channels are always kept."""
    if keep >= group.size:
        return list(range(group.size))
    order = removal_order(group, scores)
    removed = order[: group.size - keep]
    return sorted(set(range(group.size)) - set(removed.tolist()))


def uniform_plan(
    graph: ChannelGraph,
    scores: dict[str, np.ndarray],
    ratio: float,
    *,
    round_to: int | str = 1,
    min_channels: int = 1,
    meta: dict | None = None,
) -> PrunePlan:
    """Remove ``floor(ratio * size)`` of each prunable group's channels, lowest scores first (kept counts
    rounded up per ``round_to``: an integer, or ``"hw"``, see :mod:`netsculpt.allocate.widths`)."""
    from netsculpt.allocate.widths import group_step

    ratio = check_ratio(ratio)
    keep: dict[str, list[int]] = {}
    for g in graph.prunable_groups:
        step = group_step(g.size, round_to)
        k = keep_count(g, int(ratio * g.size), round_to=step, min_channels=min_channels)
        if k < g.size:
            keep[g.id] = select_keep(g, scores[g.id], k)
    if ratio > 0 and not keep:
        rounded = [
            g for g in graph.prunable_groups
            if keep_count(g, int(ratio * g.size), min_channels=min_channels) < g.size
        ]  # fmt: skip
        if rounded:
            steps = sorted({group_step(g.size, round_to) for g in rounded})
            raise PruningError(
                f"nothing was pruned at ratio {ratio}: rounding kept counts up to a multiple of "
                f"{', '.join(map(str, steps))} (round_to={round_to!r}) gave every group back all its "
                "channels; raise the ratio, or pass round_to=1"
            )
        raise PruningError(_nothing_prunable(graph, ratio, min_channels))
    sizes = {g.id: g.size for g in graph.groups}
    return PrunePlan(keep, sizes, dict(meta or {}))


def _nothing_prunable(graph: ChannelGraph, ratio: float, min_channels: int) -> str:
    """Why no group loses a channel: pinned groups, or prunable groups too small for the ask (a
    message claiming "pinned" for the latter sent users looking for reasons ns.trace does not show)."""
    groups = graph.prunable_groups
    if not groups:
        return (
            "nothing can be pruned: every channel group is pinned (see ns.trace(model, inputs) for the "
            "reasons), the closest achievable ratio is 0"
        )
    biggest = max(g.size for g in groups)
    head = (
        f"nothing can be pruned at ratio {ratio}: {len(groups)} channel group(s) are prunable but none "
        "can lose a channel"
    )
    if biggest == 1:
        return (
            f"{head}: each holds a single channel and a group always keeps one (see ns.trace(model, "
            "inputs) for why the groups are this small)"
        )
    if min_channels >= biggest:
        return (
            f"{head}: min_channels={min_channels} is not below any group's size (the largest has {biggest} "
            f"channels); pass min_channels < {biggest}"
        )
    return (
        f"{head}: removing floor(ratio x size) channels takes none from any group (the largest has "
        f"{biggest}), with min_channels={min_channels}; raise the ratio to at least {1 / biggest:.3g}"
    )
