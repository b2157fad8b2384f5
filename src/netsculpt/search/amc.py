"""AMC (He et al., ECCV 2018): a DDPG agent chooses each channel group's keep ratio, in order.

State per group (AMC's list): index, layer type, input and output channels, kernel, stride, the MACs the
group controls, the cost already removed, the cost still to decide, the previous action. The action is
the group's keep ratio; it is clamped so the groups still to come can meet the budget (AMC's way), and
the episode's plan lands within ``tolerance`` of the target MACs / params / latency. The reward is minus
the candidate's error (``metric``) from the cheap scorer (adaptive BN + a few held-out batches), so
candidates run on the search's executor (this process, local workers or Ray) and are cached in the
resumable state. After ``episodes`` episodes the best ``final_candidates`` explored (and the noiseless
policy's own plan) are re-scored on the full batches and the best is picked.

The agent (networks, Adam moments, replay buffer, RNG states, noise and baseline) is checkpointed after
every episode (``amc_agent.safetensors``); a resumed search continues from the last saved episode. The
learned policy is saved as ``policy.safetensors`` + ``policy.json`` (:mod:`netsculpt.search.amc_policy`)
and can prune another model of the same family, or warm-start its search (``policy=...``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from torch import nn

from netsculpt.errors import ConfigError
from netsculpt.graph.builder import ROLE_OUT
from netsculpt.layer_kinds import is_hf_conv1d, linear_features
from netsculpt.progress import track
from netsculpt.search.budget_walk import BudgetWalk
from netsculpt.search.config import SearchConfig, _fraction, _int
from netsculpt.search.rl_agent import AgentConfig, DDPGAgent
from netsculpt.search.scoring import MethodOutput, SearchContext
from netsculpt.search.space import SearchSpace

AGENT_FILE = "amc_agent.safetensors"
LAYER_TYPES = {nn.Conv1d: 0.0, nn.Conv2d: 0.0, nn.Conv3d: 0.0, nn.Linear: 1.0}


@dataclass
class AMCConfig(SearchConfig):
    """AMC settings: ``warmup`` random episodes fill the replay buffer, then ``episodes - warmup`` with
    decaying truncated-normal noise; the agent's own settings are the ``agent_*`` fields."""

    method: ClassVar[str] = "amc"
    metric: str = "accuracy"  # reward = -error, as in the paper ("loss": -cross-entropy)
    episodes: int = 60
    warmup: int = 15
    final_candidates: int = 4
    hidden: int = 64
    actor_lr: float = 1e-3
    critic_lr: float = 1e-3
    tau: float = 0.01
    gamma: float = 1.0
    batch_size: int = 32
    noise: float = 0.5
    noise_decay: float = 0.95
    policy: str | None = None

    def validate(self) -> None:
        super().validate()
        for name, low in (("episodes", 1), ("warmup", 0), ("final_candidates", 1), ("hidden", 4)):
            _int(self, name, low)
        _int(self, "batch_size", 1)
        if self.warmup >= self.episodes:
            raise ConfigError(
                f"warmup={self.warmup} random episodes leave none of episodes={self.episodes} to learn in"
            )
        for name in ("actor_lr", "critic_lr", "tau", "noise_decay", "gamma"):
            _fraction(self, name, low=0.0, high=1.000001)
        _fraction(self, "noise", low=0.0, high=10.0)

    def agent(self) -> AgentConfig:
        return AgentConfig(
            hidden=self.hidden,
            actor_lr=self.actor_lr,
            critic_lr=self.critic_lr,
            tau=self.tau,
            gamma=self.gamma,
            batch_size=self.batch_size,
            buffer_size=max(2000, 4 * self.batch_size),
            noise=self.noise,
            noise_decay=self.noise_decay,
        )


class GroupWalkSpace:
    """The search space's channel groups as a :class:`~netsculpt.search.budget_walk.WalkSpace`: choices
    are kept-channel counts, the action is the keep ratio, the cost is ``metric`` as a fraction."""

    def __init__(self, space: SearchSpace, model: nn.Module, metric: str) -> None:
        self.space, self.metric = space, metric
        step = space.round_to
        self._choices = []
        for floor, size in zip(space.floors, space.sizes):
            values = list(range(int(floor), int(size) + 1, step))
            if values[-1] != size:
                values.append(int(size))
            self._choices.append(np.array(values, dtype=np.int64))
        self._features = np.array([self._layer(g, model) for g in space.groups], dtype=np.float64)
        full = space.cost(space.full(), metric)
        shares = []
        for i in range(len(space)):
            counts = space.full()
            counts[i] = space.floors[i]
            shares.append(max(full - space.cost(counts, metric), 0.0))
        self._weights = np.array(shares)
        self._features = np.column_stack([self._features, self._weights])

    @staticmethod
    def _layer(group: Any, model: nn.Module) -> list[float]:
        """Type, in channels, out channels, kernel, stride of the group's first producing layer."""
        modules = dict(model.named_modules())
        for m in group.members:
            module = modules.get(m.module)
            if module is not None and is_hf_conv1d(module) and m.role == ROLE_OUT and m.dim == 1:
                return [1.0, *map(float, linear_features(module)), 1.0, 1.0]  # weight stored (in, out)
            if (
                m.role == ROLE_OUT
                and m.name.endswith("weight")
                and m.dim == 0
                and type(module) in LAYER_TYPES
            ):
                kind = LAYER_TYPES[type(module)]
                if isinstance(module, nn.Linear):
                    return [kind, module.in_features, module.out_features, 1.0, 1.0]
                depthwise = module.groups > 1 and module.groups == module.in_channels
                kernel = float(np.prod(module.kernel_size))
                stride = float(np.prod(module.stride))
                return [0.5 if depthwise else kind, module.in_channels, module.out_channels, kernel, stride]
        return [1.0, group.size, group.size, 1.0, 1.0]

    def choices(self, i: int) -> np.ndarray:
        return self._choices[i]

    def cost(self, values: np.ndarray) -> float:
        return self.space.cost(np.asarray(values, dtype=np.int64), self.metric)

    def to_choice(self, i: int, action: float) -> int:
        wanted = self.space.clip(np.where(np.arange(len(self.space)) == i, action * self.space.sizes, 0))[i]
        return int(np.searchsorted(self._choices[i], wanted))

    def to_action(self, i: int, index: int) -> float:
        return float(self._choices[i][index] / self.space.sizes[i])

    def features(self) -> np.ndarray:
        return self._features

    def weights(self) -> np.ndarray:
        return self._weights


def make_walk(
    space: SearchSpace, model: nn.Module, metric: str, value: float, tolerance: float
) -> BudgetWalk:
    return BudgetWalk(GroupWalkSpace(space, model, metric), value, tolerance, what=metric)


def run(ctx: SearchContext) -> MethodOutput:
    from netsculpt.search import amc_policy

    config: AMCConfig = ctx.config
    if len(ctx.targets) != 1:
        raise ConfigError("AMC learns a policy for one budget; give one target")
    (target,) = ctx.targets
    walk = make_walk(ctx.space, ctx.space.model, target.metric, target.value, config.tolerance)
    agent = DDPGAgent(walk.state_dim, config.agent(), seed=config.seed)
    if config.policy:
        amc_policy.warm_start(agent, config.policy)
    out = ctx.state.path.parent if ctx.state.path is not None else None
    records: list[dict[str, Any]] = []
    if out is not None and ctx.state.resumed and (out / AGENT_FILE).exists():
        records = amc_policy.load_agent(agent, out / AGENT_FILE)
        ctx.say(f"resuming AMC after episode {len(records)} of {config.episodes}")
    if ctx.screener is not None:  # after a resume the screen trains on this run's episodes so far
        for r in records:
            ctx.screener.record(r["widths"])
    queue: list[tuple[Any, int]] = []  # screened rollouts still to be played, with their pool's size
    # a screened step's picks are all played, so the last one may add up to screen_pool - 1 episodes
    for episode in track(itertools.count(len(records)), "AMC episodes", total=config.episodes - len(records)):
        if episode >= config.episodes and not queue:
            break
        warm = episode < config.warmup
        if not queue:
            queue = _rollouts(ctx, walk, agent, warm)
        ep, pool = queue.pop(0)
        counts = ep.values.astype(np.int64)
        (evaluation,) = ctx.scorer.score([counts], "cheap")
        if ctx.screener is not None:  # warm-up episodes are the predictor's first data
            ctx.screener.record(counts)
        reward = -ctx.scorer.value(evaluation)
        advantage = agent.observe_episode(ep.states, ep.actions, reward)
        done = agent.learn(len(ep.states)) if not warm else []
        agent.end_episode(warm)
        records.append(
            {
                "episode": episode,
                "warmup": warm,
                "reward": reward,
                "advantage": advantage,
                "noise": agent.noise,
                "cost": ep.cost,
                "widths": [int(c) for c in counts],
                "critic_loss": float(np.mean([d[0] for d in done])) if done else None,
                **({"pool": pool} if ctx.screener is not None else {}),
            }
        )
        if episode % 10 == 9 or (episode + 1 >= config.episodes and not queue):
            best = max(r["reward"] for r in records)
            ctx.say(f"episode {episode + 1}: reward {reward:.4f}, best {best:.4f}, noise {agent.noise:.3f}")
        if out is not None:
            amc_policy.save_agent(agent, out / AGENT_FILE, records)
        ctx.checkpoint({"episode": episode, "episodes": records})
    greedy = walk.run(lambda s, lo, hi: agent.act(s, lo, hi, "greedy")).values.astype(np.int64)
    counts, picked = _pick(ctx, records, greedy, config.final_candidates)
    uniform = ctx.space.fit(np.ones(len(ctx.space)), target.metric, target.value, config.tolerance)
    history = {
        "metric": config.metric,
        "cost": target.metric,
        "budget": target.value,
        "uniform": ctx.describe(uniform),
        "policy": ctx.describe(greedy),
        "picked": picked,
        "episodes": records,
    }
    files: dict[str, Any] = {"episodes": records}
    if out is not None:
        amc_policy.save_policy(agent, walk, out, config, target)
    return MethodOutput({target.label: counts}, history, files)


def _rollouts(ctx: SearchContext, walk: BudgetWalk, agent: DDPGAgent, warm: bool) -> list[tuple[Any, int]]:
    """The next episodes to play: one rollout, or with a predictor (``predictor="gcn"``) ``screen_pool``
    noisy rollouts of the current actor of which the screen picks the ones worth scoring (all of them
    while it has too little data or has not earned trust; each picked one is a full episode the agent
    learns from, so ``episodes`` still counts scored candidates). Warm-up episodes are never screened:
    they are the random data the predictor and the replay buffer start from."""
    explore = "random" if warm else "noise"
    if ctx.screener is None or warm:
        return [(walk.run(lambda s, lo, hi: agent.act(s, lo, hi, explore)), 1)]
    pool = [walk.run(lambda s, lo, hi: agent.act(s, lo, hi, explore)) for _ in range(ctx.config.screen_pool)]
    chosen = ctx.screener.select([ep.values.astype(np.int64) for ep in pool])
    return [(pool[i], len(pool)) for i in chosen]


def _pick(
    ctx: SearchContext, records: list[dict[str, Any]], greedy: np.ndarray, n: int
) -> tuple[np.ndarray, str]:
    """The best of the top ``n`` explored plans and the noiseless policy's, on the full batches."""
    seen: dict[str, tuple[np.ndarray, str]] = {}
    for r in sorted(records, key=lambda r: -r["reward"]):
        counts = np.array(r["widths"], dtype=np.int64)
        seen.setdefault(ctx.space.key(counts), (counts, f"episode {r['episode']}"))
        if len(seen) >= n:
            break
    seen.setdefault(ctx.space.key(greedy), (greedy, "policy"))
    candidates = list(seen.values())
    scores = ctx.scorer.score([c for c, _ in candidates], "full")
    best = int(np.argmin([ctx.scorer.value(e) for e in scores]))
    return candidates[best]
