"""Pareto fronts: the models no other model beats on both accuracy and cost.

A point is dominated when another point is at least as accurate *and* at most as costly, and strictly
better in one of the two. Points missing either value are left out rather than guessed. Exact
duplicates do not dominate each other, so both stay on the front (a report should not hide a model).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

from netsculpt.errors import ConfigError

T = TypeVar("T")


def non_dominated(values: Sequence[Sequence[float]], maximize: Sequence[bool]) -> list[int]:
    """Indices of the rows of ``values`` that no other row dominates, in input order.

    ``maximize[j]`` says whether objective ``j`` is better when larger. O(n^2) in numpy: the fronts a
    report draws have at most a few thousand points.
    """
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return []
    if arr.ndim != 2 or arr.shape[1] != len(maximize):
        raise ConfigError(f"expected rows of {len(maximize)} objectives, got an array of shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ConfigError("objective values must be finite numbers; drop points with missing values first")
    signs = np.where(np.asarray(maximize, dtype=bool), -1.0, 1.0)
    costs = arr * signs  # now every objective is "smaller is better"
    no_worse = (costs[:, None, :] <= costs[None, :, :]).all(axis=2)  # [i, j]: i is no worse than j
    better = (costs[:, None, :] < costs[None, :, :]).any(axis=2)
    dominated = (no_worse & better).any(axis=0)
    return [int(i) for i in np.flatnonzero(~dominated)]


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int beyond float range
        return None
    return number if math.isfinite(number) else None


def pareto_front(
    points: Sequence[T],
    cost: str | Callable[[T], Any],
    score: str | Callable[[T], Any] = "accuracy",
) -> list[T]:
    """The non-dominated ``points`` (high ``score``, low ``cost``), sorted by cost for drawing a line.

    ``cost``/``score`` are attribute or key names (``"macs"``, ``"latency_ms"``) or functions of a point.
    Points whose cost or score is missing are ignored.
    """
    get_cost = _getter(cost)
    get_score = _getter(score)
    usable = [(p, _number(get_cost(p)), _number(get_score(p))) for p in points]
    usable = [(p, c, s) for p, c, s in usable if c is not None and s is not None]
    keep = non_dominated([(c, s) for _, c, s in usable], maximize=(False, True))
    front = [usable[i] for i in keep]
    front.sort(key=lambda item: (item[1], item[2]))
    return [p for p, _, _ in front]


def _getter(key: str | Callable[[Any], Any]) -> Callable[[Any], Any]:
    if callable(key):
        return key

    def get(point: Any) -> Any:
        return point.get(key) if isinstance(point, dict) else getattr(point, key, None)

    return get
