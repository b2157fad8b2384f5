"""Fitting a choice vector to a cost budget: scale by bisection, then grow single steps while they fit.

The width search space, N2N's students and the budget-clamped walk (AMC / HAQ) all land a candidate just
under a budget the same way; they differ only in how a candidate is priced and what "one step up" means
for a layer, so both are passed in as callables.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

Cost = Callable[[np.ndarray], float]


def bisect_scale(
    make: Callable[[float], np.ndarray], cost: Cost, value: float, high: float, best: np.ndarray
) -> np.ndarray:
    """``make(scale)`` for the largest ``scale`` in ``[0, high]`` found to cost at most ``value``.

    Forty halvings (stopping once the interval is under 1e-4), so a shape can be scaled to a budget without
    knowing the cost's form; ``best`` is returned when no probed scale fits.
    """
    lo, hi = 0.0, high
    for _ in range(40):
        mid = (lo + hi) / 2
        candidate = make(mid)
        if cost(candidate) <= value:
            lo, best = mid, candidate
        else:
            hi = mid
        if hi - lo < 1e-4:
            break
    return best


def grow_to_budget(
    values: np.ndarray,
    cost: Cost,
    value: float,
    tolerance: float,
    priority: Sequence[int],
    step_up: Callable[[np.ndarray, int], float | None],
) -> np.ndarray:
    """Raise single entries of ``values``, in ``priority`` order, while the cost stays at most ``value``.

    Channel or bit granularity leaves a scaled or clamped candidate short of the budget; this gives steps
    back until the cost is within ``tolerance / 2`` under ``value`` or no step fits. Each pass takes the
    first entry in ``priority`` whose next step (``step_up(values, i)``, ``None`` at its top) still fits; an
    entry whose step does not fit is not tried again. ``values`` itself is not modified.
    """
    current = cost(values)
    blocked: set[int] = set()
    while current < value * (1 - tolerance / 2) and len(blocked) < len(priority):
        for i in priority:
            if i in blocked:
                continue
            nxt = step_up(values, i)
            if nxt is None:
                blocked.add(i)
                continue
            trial = values.copy()
            trial[i] = nxt
            trial_cost = cost(trial)
            if trial_cost <= value:
                values, current = trial, trial_cost
                break
            blocked.add(i)
        else:
            break
    return values
