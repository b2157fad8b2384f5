"""Multi-objective width search: NSGA-II (pymoo) over the held-out metric and a cost.

The cost is the targets' metric: MACs or parameters (exact, from the cost model) or latency (the
lookup-table model of measured layer latencies). Every candidate scored during the run is kept; the
Pareto front is taken over all of them (not only the last population), its members are re-scored on
the fuller batches, and the front is recomputed on those scores — so the front reported is
non-dominated in exactly the numbers it shows. For each target, the best front member within budget
gives the allocation's shape, which is then scaled onto the budget (like the GA's repair) and scored.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from netsculpt.search.config import NSGA2Config
from netsculpt.search.evolution import (
    BudgetRepair,
    WidthProblem,
    evolve,
    initial_population,
    operators,
    population_rows,
)
from netsculpt.search.scoring import MethodOutput, SearchContext


def run(ctx: SearchContext) -> MethodOutput:
    config: NSGA2Config = ctx.config
    space, metric = ctx.space, ctx.metric
    problem = WidthProblem(ctx, cost_objective=True, budget=None)
    seeds = [
        space.ratios(space.fit(np.ones(len(space)), metric, t.value, config.tolerance)) for t in ctx.targets
    ]
    seeds.append(np.ones(len(space)))
    algorithm = NSGA2(
        pop_size=config.pop_size,
        sampling=initial_population(ctx, config.pop_size, seeds),
        repair=BudgetRepair(ctx, low=config.min_cost),
        **operators(config),
    )
    seen: dict[str, np.ndarray] = {}

    def after_generation(gen: int, algo: Any) -> dict[str, Any]:
        for x in algo.off.get("X") if algo.off is not None else []:
            counts = problem.counts(x)
            if ctx.screener is None or space.key(counts) in ctx.screener.seen:  # screened out: unscored
                seen[space.key(counts)] = counts
        rows = population_rows(ctx, problem, algo.pop)
        ctx.say(f"generation {gen}: {len(seen)} candidates scored")
        return {"generation": gen, "evaluated": dict(ctx.scorer.evaluated), "population": rows}

    evolve(ctx, algorithm, problem, config.generations, after_generation)
    everything = list(seen.values())
    front = pareto_front(ctx, everything, "cheap")
    ctx.scorer.score(front, "full")
    front = pareto_front(ctx, front, "full")
    front_rows = [_row(ctx, c) for c in front]
    picks = {}
    for target in ctx.targets:
        within = [c for c in front if space.cost(c, metric) <= target.value]
        if not within:  # no front member is cheap enough: the narrowest one's shape, scaled down
            within = [min(front, key=lambda c: space.cost(c, metric))]
        best = min(within, key=lambda c: ctx.scorer.value(ctx.scorer.best_known(c)))
        picks[target.label] = space.fit(space.ratios(best), metric, target.value, config.tolerance)
    history = {
        "metric": config.metric,
        "cost": metric,
        "front": front_rows,
        "evaluated": [_point(ctx, c) for c in everything],
        "generations": ctx.records["generations"],
    }
    return MethodOutput(picks, history, {"front": front_rows})


def pareto_front(ctx: SearchContext, candidates: list[np.ndarray], level: str) -> list[np.ndarray]:
    """The candidates no other candidate beats on both metric (at ``level``) and cost, by cost."""
    if not candidates:
        return []
    points = np.array([_objectives(ctx, c, level) for c in candidates])
    first = NonDominatedSorting().do(points, only_non_dominated_front=True)
    unique: dict[str, np.ndarray] = {}
    for i in sorted(first, key=lambda i: points[i][1]):
        unique.setdefault(ctx.space.key(candidates[i]), candidates[i])
    return list(unique.values())


def _objectives(ctx: SearchContext, counts: np.ndarray, level: str) -> tuple[float, float]:
    evaluation = ctx.state.cache.get(level, ctx.space.key(counts)) or ctx.scorer.best_known(counts)
    assert evaluation is not None
    return ctx.scorer.value(evaluation), ctx.space.cost(counts, ctx.metric)


def _point(ctx: SearchContext, counts: np.ndarray) -> dict[str, float]:
    value, cost = _objectives(ctx, counts, "cheap")
    return {"cost": cost, "value": value}


def _row(ctx: SearchContext, counts: np.ndarray) -> dict[str, Any]:
    evaluation = ctx.state.cache.get("full", ctx.space.key(counts)) or ctx.scorer.best_known(counts)
    assert evaluation is not None
    return {
        "widths": ctx.space.widths(counts),
        "cost": ctx.space.costs(counts),
        "value": ctx.scorer.value(evaluation),
        "accuracy": evaluation.accuracy,
        "loss": evaluation.loss,
    }
