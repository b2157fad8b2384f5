"""HAQ-style mixed precision for palettization (Wang et al., CVPR 2019): bits per layer under a byte budget.

The same DDPG agent as AMC (:mod:`netsculpt.search.rl_agent`) walks the palettizable layers and picks
each layer's bit width; the walk is clamped (:mod:`netsculpt.search.budget_walk`) so the bits still to
come can keep the packed file within ``budget_bytes`` (real bytes on disk, predicted exactly by
:class:`~netsculpt.weights.bit_space.BitSpace`). The reward is minus the held-out error of the k-means
palettized candidate. Baselines over the same bit vectors: pymoo's GA (``"genetic"``) and NSGA-II
(``"nsga2"``, error vs bytes, best member under the budget). The chosen bits then go to
:func:`netsculpt.weights.cluster_model` as ``layer_bits`` (DKM fine-tuning, or k-means).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import Tensor

from netsculpt.errors import ConfigError, PruningError
from netsculpt.progress import info, track
from netsculpt.search.budget_walk import BudgetWalk
from netsculpt.search.rl_agent import AgentConfig, DDPGAgent
from netsculpt.weights.bit_space import HEADER_SLACK, BitSpace, BitWalkSpace, describe_bits

BIT_SEARCHERS = ("agent", "genetic", "nsga2")


@dataclass
class BitSearchConfig:
    """``episodes`` agent episodes (``warmup`` random), or ``pop_size`` x ``generations`` for GA/NSGA-II.
    ``metric``: "accuracy" (reward -error, HAQ's) or "loss"."""

    method: str = "agent"
    low: int = 1
    high: int = 8
    episodes: int = 40
    warmup: int = 10
    pop_size: int = 16
    generations: int = 8
    metric: str = "loss"
    final_candidates: int = 4
    seed: int = 0
    agent: AgentConfig = field(default_factory=lambda: AgentConfig(hidden=64, batch_size=16))

    def __post_init__(self) -> None:
        if self.method not in BIT_SEARCHERS:
            raise ConfigError(f"bit search method {self.method!r}: use one of {', '.join(BIT_SEARCHERS)}")
        if self.metric not in ("accuracy", "loss"):
            raise ConfigError(f"metric={self.metric!r}: use 'accuracy' or 'loss'")
        if not 0 <= self.warmup < self.episodes:
            raise ConfigError(f"warmup={self.warmup} must be in [0, episodes={self.episodes})")


@dataclass
class BitSearchResult:
    bits: dict[str, int]
    predicted_bytes: int
    budget_bytes: int
    history: dict[str, Any]


class _Scores:
    """Cached held-out scores of bit vectors (cheap: the first ``cheap`` batches; full: all)."""

    def __init__(self, space: BitSpace, batches: list[tuple[Tensor, Tensor]], metric: str, cheap: int):
        self.space, self.batches, self.metric, self.cheap = space, batches, metric, cheap
        self.cache: dict[tuple[str, tuple[int, ...]], tuple[float, float]] = {}

    def value(self, bits: np.ndarray, level: str = "cheap") -> float:
        key = (level, tuple(int(b) for b in bits))
        if key not in self.cache:
            batches = self.batches[: self.cheap] if level == "cheap" else self.batches
            self.cache[key] = self.space.evaluate(key[1], batches)
        accuracy, loss = self.cache[key]
        return 1.0 - accuracy if self.metric == "accuracy" else loss


def search_bits(
    space: BitSpace,
    budget_bytes: int,
    batches: list[tuple[Tensor, Tensor]],
    config: BitSearchConfig | None = None,
    cheap_batches: int = 2,
) -> BitSearchResult:
    """Bits per layer of ``space`` whose packed file is at most ``budget_bytes``, chosen on ``batches``."""
    config = config or BitSearchConfig()
    if not len(space):
        raise PruningError("nothing to act on: no layer can be palettized (see PaletteConfig.select)")
    budget = int(budget_bytes) - HEADER_SLACK
    walk = BudgetWalk(BitWalkSpace(space), budget, tolerance=0.02, what="bytes")
    space.prepare()
    scores = _Scores(space, batches, config.metric, cheap_batches)
    if config.method == "agent":
        explored, history = _agent(walk, scores, config)
    else:
        explored, history = _evolve(walk, scores, config)
    ranked = sorted(explored, key=lambda b: scores.value(b))[: config.final_candidates]
    best = min(ranked, key=lambda b: scores.value(b, "full"))
    history["picked"] = describe_bits(space, best)
    history["uniform"] = {
        str(b): space.nbytes([min(max(b, layer.bits[0]), layer.bits[-1]) for layer in space.layers])
        for b in range(config.low, config.high + 1)
    }
    return BitSearchResult(space.layer_bits(best), space.nbytes(best), int(budget_bytes), history)


def _agent(walk: BudgetWalk, scores: _Scores, config: BitSearchConfig) -> tuple[list[np.ndarray], dict]:
    agent = DDPGAgent(walk.state_dim, config.agent, seed=config.seed)
    explored, records = [], []
    for episode in track(range(config.episodes), "HAQ episodes"):
        warm = episode < config.warmup
        mode = "random" if warm else "noise"
        ep = walk.run(lambda s, lo, hi, m=mode: agent.act(s, lo, hi, m))
        reward = -scores.value(ep.values)
        agent.observe_episode(ep.states, ep.actions, reward)
        if not warm:
            for _ in ep.states:
                agent.update()
        agent.end_episode(warm)
        explored.append(ep.values.astype(np.int64))
        records.append({"episode": episode, "reward": reward, "bytes": ep.cost, "bits": ep.values.tolist()})
    greedy = walk.run(lambda s, lo, hi: agent.act(s, lo, hi, "greedy")).values.astype(np.int64)
    explored.append(greedy)
    info(f"HAQ: best reward {max(r['reward'] for r in records):.4f} over {config.episodes} episodes")
    return explored, {"method": "agent", "episodes": records}


def _evolve(walk: BudgetWalk, scores: _Scores, config: BitSearchConfig) -> tuple[list[np.ndarray], dict]:
    """pymoo GA / NSGA-II over bit vectors; genomes in [0, 1) per layer decode onto the bit choices and
    are repaired onto the budget by the walk's clamp (so every member is feasible)."""
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.algorithms.soo.nonconvex.ga import GA
    from pymoo.core.problem import Problem
    from pymoo.core.repair import Repair
    from pymoo.optimize import minimize

    space, n = walk.space, walk.n

    def decode(x: np.ndarray) -> np.ndarray:
        replay = iter(x)
        return walk.run(lambda s, lo, hi: float(np.clip(next(replay), lo, hi))).values.astype(np.int64)

    def encode(bits: np.ndarray) -> np.ndarray:
        return np.array(
            [space.to_action(i, int(np.searchsorted(space.choices(i), b))) for i, b in enumerate(bits)]
        )

    explored: list[np.ndarray] = []

    class BitProblem(Problem):
        def __init__(self) -> None:
            super().__init__(n_var=n, n_obj=2 if config.method == "nsga2" else 1, xl=0.0, xu=1.0)

        def _evaluate(self, X: np.ndarray, out: dict, *args: Any, **kwargs: Any) -> None:
            bits = [decode(x) for x in X]
            explored.extend(bits)
            errors = np.array([scores.value(b) for b in bits])
            sizes = np.array([space.cost(b) for b in bits]) / walk.budget
            out["F"] = np.column_stack([errors, sizes]) if config.method == "nsga2" else errors[:, None]

    class Snap(Repair):
        def _do(self, problem: Any, X: np.ndarray, **kwargs: Any) -> np.ndarray:
            return np.array([encode(decode(x)) for x in X])

    algo_cls = NSGA2 if config.method == "nsga2" else GA
    algorithm = algo_cls(pop_size=config.pop_size, repair=Snap(), eliminate_duplicates=True)
    minimize(BitProblem(), algorithm, ("n_gen", config.generations), seed=config.seed, verbose=False)
    info(f"HAQ {config.method}: {len(explored)} bit vectors scored")
    return explored, {"method": config.method, "scored": len(explored)}
