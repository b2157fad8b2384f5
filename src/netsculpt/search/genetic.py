"""Genetic-algorithm channel selection under a MACs, parameter or latency budget (pymoo's GA).

Following the seed paper's recipe: a population of per-group keep ratios, a cost constraint, and a
two-step approximate fitness — every candidate is scored cheaply on a few held-out batches, and only
the elite (the ``elite`` best of the population after each generation) are re-scored on more batches,
repeatedly until the elite all carry the fuller score. Cheap scores are noisy; letting noise decide
which candidates breed at the top is what the second step prevents. The initial population holds the
uniform allocation (so the result is never worse than uniform on the fuller score) and random shapes.
With ``finalists`` the winner is chosen among the best few after a short distillation
(netsculpt.search.finalists). It is fine-tuned afterwards, by distillation from the unpruned model
(:func:`netsculpt.search.finetune_pruned`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pymoo.algorithms.soo.nonconvex.ga import GA

from netsculpt.errors import ConfigError
from netsculpt.search.config import GeneticConfig
from netsculpt.search.evolution import (
    BudgetRepair,
    WidthProblem,
    evolve,
    initial_population,
    operators,
    population_rows,
)
from netsculpt.search.finalists import choose_finalist, finalists_ready
from netsculpt.search.scoring import MethodOutput, SearchContext


def run(ctx: SearchContext) -> MethodOutput:
    config: GeneticConfig = ctx.config
    if len(ctx.targets) != 1:
        raise ConfigError(
            "the genetic search meets one budget at a time; give one target (or use nsga2 / greedy, "
            "which serve several targets from one run)"
        )
    (target,) = ctx.targets
    done = finalists_ready(ctx)
    problem = WidthProblem(ctx, cost_objective=False, budget=target.value)
    sampling = initial_population(ctx, config.pop_size, [np.ones(len(ctx.space))])
    algorithm = GA(
        pop_size=config.pop_size,
        sampling=sampling,
        repair=BudgetRepair(ctx, high=target.value),
        **operators(config),
    )

    def after_generation(gen: int, algo: Any) -> dict[str, Any]:
        _refine_elite(ctx, problem, algo.pop, config.elite)
        rows = population_rows(ctx, problem, algo.pop)
        values = [r["fitness"][0] for r in rows]
        ctx.say(f"generation {gen}: best {config.metric} {values[0]:.4f} (mean {np.mean(values):.4f})")
        return {
            "generation": gen,
            "best": values[0],
            "mean": float(np.mean(values)),
            "evaluated": dict(ctx.scorer.evaluated),
            "population": rows,
            **({"screen": ctx.screener.last_round()} if ctx.screener is not None else {}),
        }

    evolve(ctx, algorithm, problem, config.generations, after_generation)
    best = population_rows(ctx, problem, algorithm.pop)[0]
    counts = np.array(best["widths"], dtype=np.int64)
    uniform = ctx.space.fit(np.ones(len(ctx.space)), target.metric, target.value, config.tolerance)
    history = {
        "metric": config.metric,
        "cost": target.metric,
        "budget": target.value,
        "uniform": ctx.describe(uniform),
        "generations": ctx.records["generations"],
    }
    if config.finalists:
        ranked = [np.array(r["widths"], dtype=np.int64) for r in population_rows(ctx, problem, algorithm.pop)]
        counts, history["final"] = choose_finalist(ctx, ranked, uniform, done)
    return MethodOutput({target.label: counts}, history, {"generations": history["generations"]})


def _refine_elite(ctx: SearchContext, problem: WidthProblem, population: Any, elite: int) -> None:
    """Give the ``elite`` best members the fuller score, until the best ``elite`` all have it.

    A member "has it" when its fitness *is* its full score, not when the cache holds one: a child equal
    to an earlier elite member is ranked on its cheap score (see ``WidthProblem._evaluate``) until it
    reaches the elite here, live and on a resumed replay alike (there the full score is a cache hit)."""
    if elite == 0:
        return
    for _ in range(len(population)):
        fitness = population.get("F")[:, 0]
        top = np.argsort(fitness, kind="stable")[:elite]
        counts = [problem.counts(population[i].X) for i in top]
        full = [ctx.state.cache.get("full", ctx.space.key(c)) for c in counts]
        need = [
            (i, c) for i, c, ev in zip(top, counts, full) if ev is None or ctx.scorer.value(ev) != fitness[i]
        ]
        if not need:
            return
        scored = ctx.scorer.score([c for _, c in need], "full")  # cached ones are not scored again
        for (i, _), ev in zip(need, scored):
            population[i].F = np.array([ctx.scorer.value(ev)])
