"""The search space: one kept-channel count per prunable group, what each choice costs, and its plan.

A candidate is a vector of counts ("widths"). Which channels a width keeps is decided once, by the
chosen criterion's scores (``select_keep``), so a search only chooses *how many*. Costs come from
:class:`~netsculpt.allocate.CostModel` (exact MACs and parameters, no model built) or from a
:class:`~netsculpt.measure.latency_model.LatencyModel` (lookup table of measured layer latencies).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import nn

from netsculpt.allocate import CostModel, select_keep
from netsculpt.allocate.uniform import removal_order
from netsculpt.errors import ConfigError, PruningError
from netsculpt.graph.channel_graph import ChannelGraph
from netsculpt.search.budget_fit import bisect_scale, grow_to_budget
from netsculpt.surgery import PrunePlan
from netsculpt.surgery.match import stamp

Counts = np.ndarray


class SearchSpace:
    """Widths of ``graph``'s prunable groups between a floor (``min_ratio``, ``min_channels``, pinned
    channels) and the full size, in steps of ``round_to`` where the group allows."""

    def __init__(
        self,
        model: nn.Module,
        example_inputs: Any,
        graph: ChannelGraph,
        scores: dict[str, np.ndarray],
        *,
        min_ratio: float = 0.1,
        round_to: int | str = 1,
        min_channels: int = 1,
        latency: Any = None,
    ) -> None:
        from netsculpt.allocate.widths import check_round_to, group_step

        self.graph, self.scores, self.latency = graph, scores, latency
        self.round_to = check_round_to(round_to)
        self.model = model  # read-only: layer descriptions for learned searchers (AMC's state)
        self.groups = graph.prunable_groups
        if not self.groups:
            raise PruningError(
                "nothing to search: every channel group is pinned (see ns.trace(model, inputs) for why)"
            )
        self.ids = [g.id for g in self.groups]
        self.sizes = np.array([g.size for g in self.groups], dtype=np.int64)
        # per-group width step: an integer round_to everywhere, or the "hw" grid ("auto" searches on it,
        # and the latency table of the configured runtime prices every candidate)
        self.steps = np.array([group_step(g.size, self.round_to) for g in self.groups], dtype=np.int64)
        floors = []
        for g, step in zip(self.groups, self.steps):
            floor = max(g.size - g.n_prunable, min_channels, math.ceil(min_ratio * g.size), 1)
            floors.append(min(g.size, _round_up(floor, int(step))))
        self.floors = np.array(floors, dtype=np.int64)
        self.cost_model = CostModel(model, graph, example_inputs)
        self.all_sizes = {g.id: g.size for g in graph.groups}
        self._keep_cache: dict[tuple[int, int], list[int]] = {}
        self._cost_cache: dict[tuple[str, str], float] = {}
        self._counted = _CountCost(model, self.groups, scores, self.cost_model)

    def __len__(self) -> int:
        return len(self.groups)

    # -- candidates ----------------------------------------------------------------------------------
    def full(self) -> Counts:
        return self.sizes.copy()

    def clip(self, counts: Sequence[float]) -> Counts:
        """Valid widths nearest ``counts``: rounded up to each group's step, between floor and size."""
        c = np.asarray(counts, dtype=np.float64)
        c = np.where(self.steps > 1, np.ceil(np.round(c, 6) / self.steps) * self.steps, np.round(c))
        return np.clip(c.astype(np.int64), self.floors, self.sizes)

    def from_ratios(self, ratios: Sequence[float]) -> Counts:
        return self.clip(np.asarray(ratios, dtype=np.float64) * self.sizes)

    def ratios(self, counts: Counts) -> np.ndarray:
        return np.asarray(counts, dtype=np.float64) / self.sizes

    def key(self, counts: Counts) -> str:
        return ",".join(str(int(c)) for c in counts)

    def keep(self, counts: Counts) -> dict[str, list[int]]:
        """Group id -> kept channel indices (the best-scored ``count`` of each group)."""
        out = {}
        for i, (g, c) in enumerate(zip(self.groups, counts)):
            if c < g.size:
                kept = self._keep_cache.get((i, int(c)))
                if kept is None:
                    kept = self._keep_cache[(i, int(c))] = select_keep(g, self.scores[g.id], int(c))
                out[g.id] = kept
        return out

    def plan(self, counts: Counts, meta: dict | None = None) -> PrunePlan:
        plan = PrunePlan(self.keep(counts), dict(self.all_sizes), dict(meta or {}))
        return stamp(plan, self.model)

    def widths(self, counts: Counts) -> dict[str, int]:
        return {gid: int(c) for gid, c in zip(self.ids, counts)}

    # -- costs ---------------------------------------------------------------------------------------
    def cost(self, counts: Counts, metric: str) -> float:
        """Cost of ``counts`` as a fraction of the unpruned model's: "macs", "params" or "latency"."""
        key = (self.key(counts), metric)
        value = self._cost_cache.get(key)
        if value is None:
            if metric == "latency":
                if self.latency is None:
                    raise ConfigError("a latency target needs a latency model (search_widths builds one)")
                value = float(self.latency.fraction(self.graph, self.keep(counts)))
            else:
                value = self._counted.fraction(np.asarray(counts), metric)
            self._cost_cache[key] = value
        return value

    def costs(self, counts: Counts) -> dict[str, float]:
        """Every cost this space can predict, for reports: fractions (MACs and parameters checked with
        the cost model itself), plus the predicted latency in ms when there is a latency model."""
        keep = self.keep(counts)
        out = {m: self.cost_model.fraction(keep, m) for m in ("macs", "params")}
        if self.latency is not None:
            out["latency"] = float(self.latency.fraction(self.graph, keep))
            out["latency_ms"] = float(self.latency.predict_keep(self.graph, keep))
        return out

    def fit(self, ratios: Sequence[float], metric: str, value: float, tolerance: float = 0.02) -> Counts:
        """The widths of the shape ``ratios`` scaled to cost at most ``value`` (and within ``tolerance``
        of it when channel granularity allows): every ratio is multiplied by one factor, found by
        bisection, then single steps are given back where they fit. ``ratios`` of all ones gives the
        uniform allocation."""
        shape = np.clip(np.asarray(ratios, dtype=np.float64), 1e-6, 1.0)
        lowest = self.cost(self.floors, metric)
        if lowest > value * (1 + 1e-9):
            raise PruningError(
                f"target {metric}={value:.3f} is unreachable: the narrowest widths allowed (min_ratio, "
                f"min_channels, pinned channels) cost {metric}={lowest:.3f}; lower min_ratio or aim higher"
            )
        best = bisect_scale(
            lambda scale: self.from_ratios(shape * scale),
            lambda counts: self.cost(counts, metric),
            value,
            1.0 / float(shape.min()),
            self.floors.copy(),
        )
        deficit = shape * self.sizes - best  # give steps back where the shape wanted most
        return self.top_up(best, metric, value, tolerance, list(np.argsort(-deficit, kind="stable")))

    def top_up(
        self, counts: Counts, metric: str, value: float, tolerance: float, priority: Sequence[int]
    ) -> Counts:
        """Add single width steps (to the next width on the group's grid), to the first group in
        ``priority`` where the cost stays at most ``value``, until within ``tolerance`` under it or no step
        fits."""
        return grow_to_budget(
            np.array(counts, dtype=np.int64),
            lambda c: self.cost(c, metric),
            value,
            tolerance,
            priority,
            self.next_width,
        )

    def next_width(self, counts: Counts, i: int) -> int | None:
        """Group ``i``'s next width on its step grid above ``counts[i]``, or ``None`` at its full size."""
        if counts[i] >= self.sizes[i]:
            return None
        return int(min(self.sizes[i], (counts[i] // self.steps[i] + 1) * self.steps[i]))


class _CountCost:
    """MACs and parameters as a function of the kept *counts*, exactly equal to the cost model's.

    Keeping ``k`` channels of a group removes the first ``size - k`` of its fixed removal order (the
    criterion's), so the positions a tensor dim loses are a prefix sum over that order: one lookup per
    (tensor, dim, group) instead of a pass over every channel — the bisections that fit widths to a
    budget call this thousands of times.
    """

    def __init__(self, model: nn.Module, groups: list, scores: dict[str, np.ndarray], cost: CostModel):
        params = dict(model.named_parameters())
        names = list(params)
        self.sizes = np.array([g.size for g in groups], dtype=np.int64)
        index = {n: i for i, n in enumerate(names)}
        self.shapes = [tuple(p.shape) for p in params.values()]
        self.rates = np.asarray(cost.rates, dtype=np.float64)
        self.fixed, self.base_macs, self.base_params = cost.fixed_macs, cost.base_macs, cost.base_params
        # parts[(tensor, dim)] = [(group position, prefix sums of positions removed in removal order)]
        self.parts: dict[tuple[int, int], list[tuple[int, np.ndarray]]] = {}
        for gi, g in enumerate(groups):
            order = removal_order(g, scores[g.id])  # the order select_keep removes in
            for m in g.members:
                if m.name not in index:
                    continue
                counts = np.bincount(m.channels, minlength=g.size)[order]
                prefix = np.concatenate([[0], np.cumsum(counts)])
                self.parts.setdefault((index[m.name], m.dim), []).append((gi, prefix))
        self.touched = sorted({t for t, _ in self.parts})
        self.static = np.array([np.prod(self.shapes[t], dtype=np.float64) for t in range(len(names))])

    def numels(self, counts: np.ndarray) -> np.ndarray:
        sizes, out = self.sizes, self.static.copy()
        for t in self.touched:
            size = 1.0
            for d, n in enumerate(self.shapes[t]):
                removed = sum(
                    int(prefix[sizes[gi] - counts[gi]]) for gi, prefix in self.parts.get((t, d), ())
                )
                size *= n - removed
            out[t] = size
        return out

    def fraction(self, counts: np.ndarray, metric: str) -> float:
        numels = self.numels(counts)
        if metric == "macs":
            return float(self.fixed + self.rates @ numels) / self.base_macs
        return float(numels.sum()) / self.base_params


def _round_up(n: int, step: int) -> int:
    return int(math.ceil(n / step) * step) if step > 1 else int(n)
