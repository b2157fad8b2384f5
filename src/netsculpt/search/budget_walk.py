"""One episode of a layer-by-layer policy under a budget, with AMC's clamp (shared by AMC and HAQ).

An agent walks the layers (channel groups, or weight tensors for bit widths) in order and proposes one
action per layer. Before acting it is told the range of choices that still lets the remaining layers
meet the budget: the largest choice for which the rest at their *smallest* still fits under the budget,
and the smallest for which the rest at their *largest* still reaches it (``tolerance`` below). The
executed (clamped) choice is what is recorded, so the agent learns from what really happened. Costs
must grow with every layer's choice (more channels, more bits: more MACs, bytes, milliseconds).

A :class:`WalkSpace` adapts a concrete space: the ordered choices per layer, the cost of a vector of
choices, how an action in [0, 1] maps to a choice, and static per-layer features for the agent's state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from netsculpt.errors import PruningError
from netsculpt.search.budget_fit import grow_to_budget

Act = Callable[[np.ndarray, float, float], float]  # (state, low, high) -> action


class WalkSpace(Protocol):
    """What a walk needs to know about the layers it decides for."""

    def choices(self, i: int) -> np.ndarray: ...  # sorted ascending

    def cost(self, values: np.ndarray) -> float: ...

    def to_choice(self, i: int, action: float) -> int: ...  # index into choices(i)

    def to_action(self, i: int, index: int) -> float: ...

    def features(self) -> np.ndarray: ...  # (layers, k) static features, any scale

    def weights(self) -> np.ndarray: ...  # (layers,) share of the cost each layer controls


@dataclass
class Episode:
    states: list[np.ndarray]
    actions: list[float]
    values: np.ndarray
    cost: float


class BudgetWalk:
    """Walks ``space`` under ``budget`` (cost units of the space), landing within ``tolerance`` of it."""

    def __init__(self, space: WalkSpace, budget: float, tolerance: float = 0.02, what: str = "cost"):
        self.space, self.budget, self.tolerance, self.what = space, float(budget), float(tolerance), what
        self.n = len(space.weights())
        if self.n == 0:
            raise PruningError("nothing to act on: the model has no layer the agent can decide for")
        self.lows = np.array([space.choices(i)[0] for i in range(self.n)])
        self.highs = np.array([space.choices(i)[-1] for i in range(self.n)])
        lowest = space.cost(self.lows)
        if lowest > self.budget * (1 + 1e-9):
            raise PruningError(
                f"the budget {what}={self.budget:.4g} can never be met: the smallest choice for every layer "
                f"already costs {lowest:.4g}; raise the budget or allow smaller choices"
            )
        self.full = space.cost(self.highs)
        static = np.asarray(space.features(), dtype=np.float64)
        scale = np.abs(static).max(axis=0)
        self.static = static / np.where(scale > 0, scale, 1.0)  # each feature in [-1, 1], AMC's normalisation
        w = np.asarray(space.weights(), dtype=np.float64)
        self.shares = w / w.sum() if w.sum() > 0 else np.full(self.n, 1.0 / self.n)
        self.state_dim = self.static.shape[1] + 4

    def state(self, i: int, values: np.ndarray, previous: float) -> np.ndarray:
        """Index, static features, cost already saved, cost share still to decide, previous action."""
        saved = (self.full - self.space.cost(values)) / self.full if self.full > 0 else 0.0
        left = float(self.shares[i + 1 :].sum())
        index = i / max(self.n - 1, 1)
        return np.concatenate([[index], self.static[i], [saved, left, previous]]).astype(np.float32)

    def bounds(self, i: int, values: np.ndarray) -> tuple[int, int]:
        """Indices into ``choices(i)`` the remaining layers can still compensate for."""
        choices = self.space.choices(i)
        trial = values.copy()
        trial[i + 1 :] = self.lows[i + 1 :]
        hi = self._last(choices, lambda c: self._cost_at(trial, i, c) <= self.budget)
        trial[i + 1 :] = self.highs[i + 1 :]
        floor = self.budget * (1 - self.tolerance / 2)
        lo = self._first(choices, lambda c: self._cost_at(trial, i, c) >= floor)
        hi = max(hi, 0)
        return min(lo if lo is not None else hi, hi), hi

    def _cost_at(self, values: np.ndarray, i: int, choice: float) -> float:
        values[i] = choice
        return self.space.cost(values)

    @staticmethod
    def _last(choices: np.ndarray, ok: Callable[[float], bool]) -> int:
        """Largest index whose choice is ``ok`` (monotone: ok for a prefix), -1 if none."""
        lo, hi = -1, len(choices) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if ok(choices[mid]):
                lo = mid
            else:
                hi = mid - 1
        return lo

    @staticmethod
    def _first(choices: np.ndarray, ok: Callable[[float], bool]) -> int | None:
        """Smallest index whose choice is ``ok`` (monotone: ok for a suffix), None if none."""
        lo, hi = 0, len(choices)
        while lo < hi:
            mid = (lo + hi) // 2
            if ok(choices[mid]):
                hi = mid
            else:
                lo = mid + 1
        return lo if lo < len(choices) else None

    def run(self, act: Act) -> Episode:
        """One episode: ``act(state, low, high)`` per layer, clamped; then single steps up to the budget."""
        values = self.highs.astype(np.float64).copy()
        states, actions, previous = [], [], 0.0
        for i in range(self.n):
            s = self.state(i, values, previous)
            lo, hi = self.bounds(i, values)
            a_lo, a_hi = self.space.to_action(i, lo), self.space.to_action(i, hi)
            wanted = act(s, a_lo, a_hi)
            index = int(np.clip(self.space.to_choice(i, wanted), lo, hi))
            values[i] = self.space.choices(i)[index]
            previous = self.space.to_action(i, index)
            states.append(s)
            actions.append(previous)
        values = self.top_up(values)
        return Episode(states, actions, values, self.space.cost(values))

    def top_up(self, values: np.ndarray, order: Sequence[int] | None = None) -> np.ndarray:
        """Raise single choices (last layers first) while the cost stays within the budget, until it is
        within ``tolerance`` below it: channel / bit granularity can leave the clamped walk short."""
        order = list(order) if order is not None else list(range(self.n - 1, -1, -1))
        return grow_to_budget(
            values.copy(), self.space.cost, self.budget, self.tolerance, order, self._next_choice
        )

    def _next_choice(self, values: np.ndarray, i: int) -> float | None:
        """Layer ``i``'s next choice above ``values[i]``, or ``None`` at its largest."""
        choices = self.space.choices(i)
        index = int(np.searchsorted(choices, values[i]))
        return None if index + 1 >= len(choices) else choices[index + 1]
