"""HAQ-style mixed precision for palettization (Wang et al., CVPR 2019): bits per layer under a byte budget.

The same DDPG agent as AMC (:mod:`netsculpt.search.rl_agent`) walks the palettizable layers and picks
each layer's bit width; the walk is clamped (:mod:`netsculpt.search.budget_walk`) so the bits still to
come can keep the packed file within ``budget_bytes`` (real bytes on disk, predicted exactly by
:class:`~netsculpt.weights.bit_space.BitSpace`). The reward is minus the held-out error of the k-means
palettized candidate. Baselines over the same bit vectors: pymoo's GA (``"genetic"``) and NSGA-II
(``"nsga2"``, error vs bytes, best member under the budget). The chosen bits then go to
:func:`netsculpt.weights.cluster_model` as ``layer_bits`` (DKM fine-tuning, or k-means). The same
walk picks int4 vs int8 weights per layer for the ONNX int8 export under a weight-byte budget, over
:class:`~netsculpt.weights.int_space.IntSpace`.

Candidates are scored on the search executors (this process, local workers, Ray): GA / NSGA-II send a
generation at a time; the agent is sequential (one candidate per episode). With ``out_dir`` the scores
and the agent (after every episode) are saved, and ``resume=True`` continues an interrupted search.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import Tensor

from netsculpt.errors import ConfigError, PruningError
from netsculpt.progress import info, track
from netsculpt.search.budget_walk import BudgetWalk
from netsculpt.search.executors import Executor, make_executor
from netsculpt.search.rl_agent import AgentConfig, DDPGAgent
from netsculpt.search.state import SearchState, weights_fingerprint
from netsculpt.weights.bit_space import BitSpace, BitWalkSpace, describe_bits

if TYPE_CHECKING:
    from netsculpt.weights.int_space import IntSpace

BIT_SEARCHERS = ("agent", "genetic", "nsga2")
AGENT_FILE = "haq_agent.safetensors"


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
    """Held-out scores of bit vectors (cheap: the first ``cheap`` batches; full: all), scored on the
    executor and kept in the resumable state's cache (saved after every new score)."""

    def __init__(self, executor: Any, state: SearchState, n: int, metric: str, cheap: int) -> None:
        self.executor, self.state, self.metric = executor, state, metric
        self.batches = {"cheap": min(cheap, n), "full": n}

    @staticmethod
    def key(bits: np.ndarray) -> str:
        return ",".join(str(int(b)) for b in bits)

    def values(self, many: list[np.ndarray], level: str = "cheap") -> list[float]:
        cache = self.state.cache
        todo = list(dict.fromkeys(k for k in map(self.key, many) if cache.get(level, k) is None))
        if todo:
            jobs = [(tuple(int(b) for b in k.split(",")), self.batches[level]) for k in todo]
            for k, evaluation in zip(todo, self.executor.map(jobs)):
                cache.put(level, k, evaluation)
            self.state.save(self.state.progress)
        return [cache.get(level, self.key(b)).value(self.metric) for b in many]  # type: ignore[union-attr]

    def value(self, bits: np.ndarray, level: str = "cheap") -> float:
        return self.values([bits], level)[0]


def search_bits(
    space: BitSpace | IntSpace,
    budget_bytes: int,
    batches: list[tuple[Tensor, Tensor]],
    config: BitSearchConfig | None = None,
    cheap_batches: int = 2,
    *,
    out_dir: str | Path | None = None,
    resume: bool = False,
    executor: Executor | None = None,
) -> BitSearchResult:
    """Bits per layer of ``space`` whose packed file is at most ``budget_bytes``, chosen on ``batches``.

    ``space``: palette bits (:class:`BitSpace`, bytes of ``model.safetensors``) or int4 / int8 weights
    (:class:`~netsculpt.weights.int_space.IntSpace`, packed quantized weight bytes of the ONNX export).

    ``out_dir``: the search state (scores, and the agent after every episode) is saved there and
    ``resume=True`` continues it (GA / NSGA-II replay their seeded generations from the cached scores).
    ``executor``: where candidates are scored (default this process; see ``make_executor``)."""
    config = config or BitSearchConfig()
    if not len(space):
        raise PruningError("nothing to act on: no layer can be palettized (see PaletteConfig.select)")
    budget = int(budget_bytes) - space.slack
    smallest = space.nbytes([layer.bits[0] for layer in space.layers])
    if smallest > budget:
        raise PruningError(
            f"the budget bytes={int(budget_bytes)} can never be met: the smallest reachable size is "
            f"{smallest + space.slack} bytes (every layer at its fewest bits); raise the budget"
        )
    walk = BudgetWalk(BitWalkSpace(space), budget, tolerance=0.02, what="bytes")
    fingerprint = {
        "method": f"haq-{config.method}",
        "config": asdict(config),
        "budget_bytes": int(budget_bytes),
        "batches": [len(batches), cheap_batches, sum(int(y.shape[0]) for _, y in batches)],
        "layers": [[layer.name, list(layer.shape), layer.bits] for layer in space.layers],
        "weights": weights_fingerprint(space.model),
    }
    state = SearchState(out_dir, fingerprint, resume)
    executor = executor or make_executor()
    executor.start(space.task(batches))
    try:
        scores = _Scores(executor, state, len(batches), config.metric, cheap_batches)
        if config.method == "agent":
            explored, history = _agent(walk, scores, config, state)
        else:
            explored, history = _evolve(walk, scores, config)
        cheap = scores.values(explored)
        order = sorted(range(len(explored)), key=lambda i: cheap[i])
        ranked = list({scores.key(explored[i]): explored[i] for i in order}.values())[
            : config.final_candidates
        ]
        full = scores.values(ranked, "full")
    finally:
        executor.close()
    best = ranked[int(np.argmin(full))]
    history["picked"] = describe_bits(space, best)
    history["uniform"] = {
        str(b): space.nbytes([min(max(b, layer.bits[0]), layer.bits[-1]) for layer in space.layers])
        for b in sorted({b for layer in space.layers for b in layer.bits})
    }
    return BitSearchResult(space.layer_bits(best), space.nbytes(best), int(budget_bytes), history)


def _agent(
    walk: BudgetWalk, scores: _Scores, config: BitSearchConfig, state: SearchState
) -> tuple[list[np.ndarray], dict]:
    from netsculpt.search.amc_policy import load_agent, save_agent

    agent = DDPGAgent(walk.state_dim, config.agent, seed=config.seed)
    path = state.path.parent / AGENT_FILE if state.path is not None else None
    records: list[dict[str, Any]] = []
    if path is not None and state.resumed and path.exists():
        records = load_agent(agent, path)
        info(f"HAQ: resuming after episode {len(records)} of {config.episodes}")
    explored = [np.array(r["bits"], dtype=np.int64) for r in records]
    for episode in track(range(len(records), config.episodes), "HAQ episodes"):
        warm = episode < config.warmup
        mode = "random" if warm else "noise"
        ep = walk.run(lambda s, lo, hi, m=mode: agent.act(s, lo, hi, m))
        reward = -scores.value(ep.values)
        agent.observe_episode(ep.states, ep.actions, reward)
        if not warm:
            agent.learn(len(ep.states))
        agent.end_episode(warm)
        explored.append(ep.values.astype(np.int64))
        records.append({"episode": episode, "reward": reward, "bytes": ep.cost, "bits": ep.values.tolist()})
        if path is not None:
            save_agent(agent, path, records)
            state.save({"episode": episode})
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
            errors = np.array(scores.values(bits))  # one batch per generation: the executor's unit
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
