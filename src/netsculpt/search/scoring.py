"""The main-process side of scoring: a cache in front of the executor, and the shared search context.

Methods ask for scores of many widths at once (a generation, a greedy step), so the executor can spread
them over workers; widths already scored at that level come from the cache (which the state file keeps,
so a resumed search does not pay for them twice).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from netsculpt.progress import info
from netsculpt.search.config import CostTarget, SearchConfig
from netsculpt.search.evaluator import Evaluation
from netsculpt.search.executors import Executor
from netsculpt.search.space import Counts, SearchSpace
from netsculpt.search.state import SearchState


class Scorer:
    """Scores widths at a level ("cheap": ``eval_batches``; "full": ``full_batches``), each once."""

    def __init__(self, space: SearchSpace, executor: Executor, config: SearchConfig, state: SearchState):
        self.space, self.executor, self.config, self.state = space, executor, config, state
        self.evaluated = {"cheap": 0, "full": 0}  # run by this process (cache hits excluded)
        self.seconds = 0.0

    def batches(self, level: str) -> int:
        return self.config.eval_batches if level == "cheap" else self.config.full_batches

    def score(self, candidates: Sequence[Counts], level: str = "cheap") -> list[Evaluation]:
        keys = [self.space.key(c) for c in candidates]
        cache = self.state.cache
        if level == "cheap" and self.config.full_batches == self.config.eval_batches:
            level = "full"  # the two levels read the same batches: share the entries
        missing: dict[str, Counts] = {}
        for key, c in zip(keys, candidates):
            if cache.get(level, key) is None and key not in missing:
                missing[key] = np.asarray(c)
        if missing:
            start = time.perf_counter()
            n = self.batches(level)
            results = self.executor.map([(self.space.keep(c), n) for c in missing.values()])
            for key, result in zip(missing, results):
                cache.put(level, key, result)
            self.evaluated[level] += len(missing)
            self.seconds += time.perf_counter() - start
        return [cache.get(level, key) for key in keys]  # type: ignore[misc]

    def value(self, evaluation: Evaluation) -> float:
        return evaluation.value(self.config.metric)

    def best_known(self, counts: Counts) -> Evaluation | None:
        return self.state.cache.best(self.space.key(counts))


@dataclass
class SearchContext:
    """What a method works with: the space, the scorer, the targets and where to save progress."""

    space: SearchSpace
    scorer: Scorer
    targets: list[CostTarget]
    config: Any
    state: SearchState
    on_step: Callable[[dict[str, Any]], None] | None = None
    records: dict[str, Any] = field(default_factory=dict)
    screener: Any = None  # netsculpt.predictors.Screener when config.predictor is set
    eval_task: Any = None  # the EvalTask (example inputs, held-out batches) for methods that build models
    train_loader: Any = None  # training data, for methods that fine-tune candidates (n2n)

    @property
    def metric(self) -> str:
        return self.targets[0].metric

    def checkpoint(self, progress: dict[str, Any]) -> None:
        """Save progress (atomically) and tell the caller a step finished."""
        self.state.save(progress)
        if self.on_step is not None:
            self.on_step(self.state.progress)

    def describe(self, counts: Counts, level: str = "full") -> dict[str, Any]:
        """Widths, costs and score of ``counts`` as plain data for histories and plan metadata."""
        (ev,) = self.scorer.score([counts], level)
        return {
            "widths": self.space.widths(counts),
            "cost": self.space.costs(counts),
            "accuracy": ev.accuracy,
            "loss": ev.loss,
            "samples": ev.samples,
        }

    def say(self, message: str) -> None:
        info(f"search: {message}")


@dataclass
class MethodOutput:
    """What a method hands back: the widths it picks per target label, its JSON-ready history, and
    named parts of that history worth their own file (``front.json``, ``trajectory.json``, ...), and
    per target what the plan's metadata should say instead (n2n: the removed blocks, costs after them)."""

    picks: dict[str, Counts]
    history: dict[str, Any]
    files: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, dict[str, Any]] = field(default_factory=dict)  # per target label: plan.meta overrides
