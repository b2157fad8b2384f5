"""The shared budget-fitting helpers, on a linear cost where the right answer is known by hand."""

from __future__ import annotations

import numpy as np

from netsculpt.search.budget_fit import bisect_scale, grow_to_budget

SIZES = np.array([8, 8, 8])


def _cost(values: np.ndarray) -> float:
    return float(np.sum(values)) / float(SIZES.sum())  # fraction of the full widths


def _next(values: np.ndarray, i: int) -> int | None:
    return None if values[i] >= SIZES[i] else int(values[i] + 2)  # a step of 2 channels


def test_bisect_scale_lands_under_the_budget() -> None:
    best = bisect_scale(lambda s: np.floor(SIZES * s), _cost, 0.5, 1.0, np.zeros(3))
    assert _cost(best) <= 0.5
    assert best.tolist() == [4, 4, 4]  # 12 / 24 is exactly 0.5, reachable at scale 0.5


def test_bisect_scale_keeps_the_fallback_when_nothing_fits() -> None:
    fallback = np.zeros(3)
    assert bisect_scale(lambda s: SIZES * (0.9 + s), _cost, 0.5, 1.0, fallback) is fallback


def test_grow_to_budget_follows_priority_and_stops_at_the_budget() -> None:
    start = np.array([2, 2, 2])
    # budget 14/24: steps of 2 go to group 2 first, then group 0; 2+2+8 = 12, then 4+2+8 = 14
    grown = grow_to_budget(start, _cost, 14 / 24, 0.0, [2, 0, 1], _next)
    assert grown.tolist() == [4, 2, 8]
    assert start.tolist() == [2, 2, 2]  # the input is not modified


def test_grow_to_budget_stops_within_tolerance() -> None:
    # already within tolerance / 2 of the budget: nothing is added
    start = np.array([4, 4, 4])
    assert grow_to_budget(start, _cost, 0.51, 0.1, [0, 1, 2], _next).tolist() == [4, 4, 4]
