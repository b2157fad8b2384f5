"""What the genetic algorithm and NSGA-II share: the pymoo problem, repairs, and the generation loop.

A genome is one keep ratio per prunable group. Repairs snap it to real widths (so pymoo's duplicate
elimination sees true duplicates) and, under a cost budget, scale it onto the budget's boundary:
accuracy grows with width, so the best candidates spend the whole budget, and the search is left to
find the *shape* of the allocation rather than to rediscover that.

Resume replays: pymoo's generator is seeded, scoring is deterministic and every score is in the saved
cache, so a resumed search retraces the interrupted one exactly, without re-scoring, and continues. For
that, a fitness may depend only on what the live run had scored by then: evaluation reads cheap scores
only, and the GA's elite step gives a member its full score whether or not the cache already held it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from pymoo.core.problem import Problem
from pymoo.core.repair import Repair
from pymoo.core.termination import NoTermination
from pymoo.operators.crossover.sbx import SBX
from pymoo.operators.mutation.pm import PM

from netsculpt.search.scoring import SearchContext

MATING_TRIES = 5
UNSCORED = 1e9  # fitness of a candidate the predictor screened out: it never survives selection


class WidthProblem(Problem):
    """Minimise the held-out metric (and, with ``cost_objective``, the cost) of per-group keep ratios."""

    def __init__(self, ctx: SearchContext, *, cost_objective: bool, budget: float | None) -> None:
        self.ctx, self.cost_objective, self.budget = ctx, cost_objective, budget
        space = ctx.space
        super().__init__(
            n_var=len(space),
            n_obj=2 if cost_objective else 1,
            n_ieq_constr=1 if budget is not None else 0,
            xl=space.floors / space.sizes,
            xu=np.ones(len(space)),
        )

    def counts(self, x: np.ndarray) -> np.ndarray:
        return self.ctx.space.from_ratios(x)

    def _evaluate(self, X: np.ndarray, out: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        """Fitness is the cheap score, even where the cache holds a full one: after a resume it holds the
        full scores the killed run gave *later*, and reading them here made the replay rank differently
        (the GA's elite step, not evaluation, is where full scores enter)."""
        counts = [self.counts(x) for x in X]
        costs = np.array([self.ctx.space.cost(c, self.ctx.metric) for c in counts])
        screener = self.ctx.screener  # predictor screening: only the chosen ones are scored
        chosen = sorted(
            set(
                screener.select(counts, costs if self.cost_objective else None)
                if screener
                else range(len(counts))
            )
        )
        scored = self.ctx.scorer.score([counts[i] for i in chosen], "cheap")
        values = np.full(len(counts), UNSCORED)
        values[chosen] = [self.ctx.scorer.value(ev) for ev in scored]
        if self.cost_objective:  # an unscored candidate is dominated by every scored one
            costs = np.where(np.isin(np.arange(len(counts)), chosen), costs, UNSCORED)
        out["F"] = np.column_stack([values, costs]) if self.cost_objective else values[:, None]
        if self.budget is not None:
            out["G"] = (costs - self.budget)[:, None]


class BudgetRepair(Repair):
    """Snap to widths; scale onto the budget (``high``) or up to a floor cost (``low``) when outside."""

    def __init__(self, ctx: SearchContext, *, high: float | None = None, low: float | None = None) -> None:
        super().__init__()
        self.ctx, self.high, self.low = ctx, high, low

    def _do(self, problem: Any, X: np.ndarray, **kwargs: Any) -> np.ndarray:
        space, metric, tol = self.ctx.space, self.ctx.metric, self.ctx.config.tolerance
        out = []
        for x in X:
            counts = space.from_ratios(x)
            if self.high is not None:
                counts = space.fit(space.ratios(counts), metric, self.high, tol)
            elif self.low is not None and space.cost(counts, metric) < self.low:
                counts = space.fit(space.ratios(counts), metric, self.low, tol)
            out.append(space.ratios(counts))
        return np.array(out)


def initial_population(ctx: SearchContext, size: int, seeds: list[np.ndarray]) -> np.ndarray:
    """``seeds`` (keep-ratio vectors, e.g. all ones = uniform) then uniform random ratios per group."""
    space = ctx.space
    rng = np.random.default_rng(ctx.config.seed)
    low = space.floors / space.sizes
    rows = [np.asarray(s, dtype=np.float64) for s in seeds[:size]]
    while len(rows) < size:
        rows.append(rng.uniform(low, 1.0))
    return np.array(rows)


def operators(config: Any) -> dict[str, Any]:
    return {
        "crossover": SBX(prob=0.9, eta=config.crossover_eta),
        "mutation": PM(eta=config.mutation_eta),
        "eliminate_duplicates": True,
    }


def evolve(
    ctx: SearchContext,
    algorithm: Any,
    problem: WidthProblem,
    generations: int,
    after_generation: Callable[[int, Any], dict[str, Any]],
) -> None:
    """Initial population plus ``generations`` rounds of ask -> score -> tell; after each,
    ``after_generation(gen, algorithm)`` returns the record that is saved with the state."""
    algorithm.setup(problem, termination=NoTermination(), seed=ctx.config.seed, verbose=False)
    # pymoo retries mating up to 100 times for unique offspring, repairing each try; after a few the
    # population has converged and a smaller generation is fine.
    algorithm.mating.n_max_iterations = MATING_TRIES
    records: list[dict[str, Any]] = []
    pop_size = algorithm.n_offsprings
    for gen in range(generations + 1):
        if ctx.screener is not None:  # a larger pool to screen from, once there is a predictor
            algorithm.n_offsprings = pop_size * (ctx.config.screen_pool if ctx.screener.active else 1)
        population = algorithm.ask()
        if population is None or len(population) == 0:
            ctx.say(f"generation {gen}: no new candidates (the population converged); stopping")
            break
        algorithm.evaluator.eval(problem, population)
        algorithm.tell(infills=population)
        records.append(after_generation(gen, algorithm))
        ctx.checkpoint({"generation": gen, "generations": records})
    ctx.records["generations"] = records


def population_rows(ctx: SearchContext, problem: WidthProblem, population: Any) -> list[dict[str, Any]]:
    """Each member's widths, cost and scores, best first (plain data for the state and history)."""
    rows = []
    for x, f in zip(population.get("X"), population.get("F")):
        counts = problem.counts(x)
        key = ctx.space.key(counts)
        cheap, full = ctx.state.cache.get("cheap", key), ctx.state.cache.get("full", key)
        rows.append(
            {
                "widths": [int(c) for c in counts],
                "cost": ctx.space.cost(counts, ctx.metric),
                "fitness": [float(v) for v in f],
                "cheap": cheap.to_list() if cheap else None,
                "full": full.to_list() if full else None,
            }
        )
    return sorted(rows, key=lambda r: tuple(r["fitness"]))
