"""A small DDPG agent (Lillicrap et al. 2016) as AMC and HAQ use it: one scalar action per layer.

Actor and critic are two-hidden-layer MLPs with target copies updated by Polyak averaging (``tau``). A
replay buffer of ``(state, action, reward, next state, done)`` transitions feeds minibatch updates. The
exploration noise is a normal around the actor's action truncated to the action's bounds, whose width
starts at ``noise`` and decays by ``noise_decay`` per episode after the warm-up (AMC's schedule); warm-up
episodes act uniformly at random. Every transition of an episode carries the episode's reward minus a
moving baseline (AMC's variance reduction), with discount ``gamma`` (AMC uses 1).

Why not stable-baselines3: SB3's DDPG runs its own environment loop and noise process, so the per-step
budget clamp (which depends on actions taken earlier in the episode *and* changes which action was
really executed), the per-episode reward shared by all transitions, the baseline and the per-episode
noise decay would each need an override of SB3 internals; the whole agent here is ~200 lines of torch.
Everything is plain tensors plus JSON so a search can checkpoint and resume it exactly.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from netsculpt.errors import CheckpointError, ConfigError


@dataclass
class AgentConfig:
    """DDPG settings (defaults follow AMC's code where this machine allows: it used 300 hidden units,
    100 warm-up and 300 training episodes)."""

    hidden: int = 64
    actor_lr: float = 1e-3
    critic_lr: float = 1e-3
    tau: float = 0.01
    gamma: float = 1.0
    batch_size: int = 32
    buffer_size: int = 2000
    noise: float = 0.5
    noise_decay: float = 0.95
    baseline_alpha: float = 0.5
    updates_per_step: int = 1  # minibatch updates per stored transition after each learning episode

    def __post_init__(self) -> None:
        if isinstance(self.updates_per_step, bool) or not isinstance(self.updates_per_step, int):
            raise ConfigError(
                f"AgentConfig.updates_per_step must be a whole number, got {self.updates_per_step!r}"
            )
        if self.updates_per_step < 1:
            raise ConfigError(f"AgentConfig.updates_per_step must be at least 1, got {self.updates_per_step}")


def _mlp(n_in: int, hidden: int, n_out: int, out: nn.Module | None = None) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU()]
    layers.append(nn.Linear(hidden, n_out))
    if out is not None:
        layers.append(out)
    return nn.Sequential(*layers)


def truncated_normal(rng: np.random.Generator, mean: float, std: float, low: float, high: float) -> float:
    """One sample of N(mean, std) truncated to [low, high] (rejection; the mean is clipped first)."""
    mean = float(np.clip(mean, low, high))
    if std <= 0 or high <= low:
        return mean
    for _ in range(1000):
        x = rng.normal(mean, std)
        if low <= x <= high:
            return float(x)
    return mean


class DDPGAgent:
    """Actor ``state -> action in [0, 1]`` and critic ``(state, action) -> value``, with target networks."""

    def __init__(self, state_dim: int, config: AgentConfig | None = None, seed: int = 0) -> None:
        self.config = config or AgentConfig()
        self.state_dim = state_dim
        torch.manual_seed(seed)
        h = self.config.hidden
        self.actor = _mlp(state_dim, h, 1, nn.Sigmoid())
        self.critic = _mlp(state_dim + 1, h, 1)
        self.actor_target, self.critic_target = copy.deepcopy(self.actor), copy.deepcopy(self.critic)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=self.config.actor_lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=self.config.critic_lr)
        self.rng = np.random.default_rng(seed)
        self.torch_gen = torch.Generator().manual_seed(seed)
        self.buffer = np.zeros((self.config.buffer_size, 2 * state_dim + 3), dtype=np.float32)
        self.stored = 0
        self.baseline: float | None = None
        self.noise = self.config.noise
        self.episodes = 0

    # -- acting ------------------------------------------------------------------------------------
    def act(self, state: np.ndarray, low: float, high: float, explore: str = "noise") -> float:
        """The action for ``state`` within [low, high]: uniform ("random"), noisy ("noise") or greedy."""
        if explore == "random":
            return float(self.rng.uniform(low, high))
        with torch.no_grad():
            mean = float(self.actor(torch.as_tensor(state, dtype=torch.float32)[None])[0, 0])
        if explore == "noise":
            return truncated_normal(self.rng, mean, self.noise, low, high)
        return float(np.clip(mean, low, high))

    # -- learning ----------------------------------------------------------------------------------
    def observe_episode(self, states: list[np.ndarray], actions: list[float], reward: float) -> float:
        """Store the episode's transitions with reward minus the moving baseline; returns that value."""
        if self.baseline is None:
            self.baseline = reward
        advantage = reward - self.baseline
        self.baseline += (1 - self.config.baseline_alpha) * (reward - self.baseline)
        n = len(states)
        for t in range(n):
            nxt = states[t + 1] if t + 1 < n else np.zeros_like(states[t])
            row = np.concatenate([states[t], [actions[t], advantage], nxt, [float(t + 1 == n)]])
            self.buffer[self.stored % len(self.buffer)] = row
            self.stored += 1
        return advantage

    def update(self) -> tuple[float, float] | None:
        """One minibatch step of critic and actor, then the soft target update; None until enough data."""
        c, d = self.config, self.state_dim
        size = min(self.stored, len(self.buffer))
        if size < c.batch_size:
            return None
        index = torch.randint(0, size, (c.batch_size,), generator=self.torch_gen)
        batch = torch.from_numpy(self.buffer[:size])[index]
        s, a, r = batch[:, :d], batch[:, d : d + 1], batch[:, d + 1 : d + 2]
        s2, done = batch[:, d + 2 : 2 * d + 2], batch[:, -1:]
        with torch.no_grad():
            q_next = self.critic_target(torch.cat([s2, self.actor_target(s2)], 1))
            y = r + c.gamma * (1 - done) * q_next
        critic_loss = nn.functional.mse_loss(self.critic(torch.cat([s, a], 1)), y)
        self.critic_opt.zero_grad()
        critic_loss.backward()
        self.critic_opt.step()
        actor_loss = -self.critic(torch.cat([s, self.actor(s)], 1)).mean()
        self.actor_opt.zero_grad()
        actor_loss.backward()
        self.actor_opt.step()
        with torch.no_grad():
            for net, target in ((self.actor, self.actor_target), (self.critic, self.critic_target)):
                for p, tp in zip(net.parameters(), target.parameters()):
                    tp.mul_(1 - c.tau).add_(p, alpha=c.tau)
        return float(critic_loss.detach()), float(actor_loss.detach())

    def learn(self, steps: int) -> list[tuple[float, float]]:
        """After an episode of ``steps`` transitions: ``steps * updates_per_step`` minibatch updates (AMC
        trains once per transition); the losses of those that ran."""
        done = (self.update() for _ in range(steps * self.config.updates_per_step))
        return [x for x in done if x is not None]

    def end_episode(self, warmup: bool) -> None:
        self.episodes += 1
        if not warmup:
            self.noise *= self.config.noise_decay

    # -- checkpoint --------------------------------------------------------------------------------
    def tensors(self) -> dict[str, Tensor]:
        """Every tensor of the agent (networks, Adam moments, buffer, torch RNG) for safetensors."""
        out: dict[str, Tensor] = {}
        for name in ("actor", "critic", "actor_target", "critic_target"):
            for key, value in getattr(self, name).state_dict().items():
                out[f"{name}.{key}"] = value.detach().clone().contiguous()
        for name in ("actor_opt", "critic_opt"):
            for pid, st in getattr(self, name).state_dict()["state"].items():
                for key, value in st.items():
                    out[f"{name}.{pid}.{key}"] = torch.as_tensor(value).detach().clone().reshape(-1)
        out["buffer"] = torch.from_numpy(self.buffer.copy())
        out["torch_rng"] = self.torch_gen.get_state()
        return out

    def meta(self) -> dict[str, Any]:
        """The JSON half of the checkpoint: config, counters, baseline, noise and numpy RNG state."""
        return {
            "config": asdict(self.config),
            "state_dim": self.state_dim,
            "stored": self.stored,
            "baseline": self.baseline,
            "noise": self.noise,
            "episodes": self.episodes,
            "rng": self.rng.bit_generator.state,
        }

    def restore(self, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        """Load what :meth:`tensors` and :meth:`meta` saved (same state size and config)."""
        if meta.get("state_dim") != self.state_dim or meta.get("config") != asdict(self.config):
            raise CheckpointError("the saved agent was built for other state features or settings")
        try:
            for name in ("actor", "critic", "actor_target", "critic_target"):
                net = getattr(self, name)
                net.load_state_dict({k: tensors[f"{name}.{k}"] for k in net.state_dict()})
            for name in ("actor_opt", "critic_opt"):
                opt = getattr(self, name)
                state = opt.state_dict()
                for pid, p in enumerate(p for g in opt.param_groups for p in g["params"]):
                    key = f"{name}.{pid}."
                    if f"{key}step" in tensors:
                        state["state"][pid] = {
                            "step": tensors[f"{key}step"].reshape(()).clone(),
                            "exp_avg": tensors[f"{key}exp_avg"].reshape(p.shape).clone(),
                            "exp_avg_sq": tensors[f"{key}exp_avg_sq"].reshape(p.shape).clone(),
                        }
                opt.load_state_dict(state)
            buffer = tensors["buffer"].numpy()
            if buffer.shape != self.buffer.shape:
                raise CheckpointError(f"the saved replay buffer has shape {list(buffer.shape)}")
            self.buffer[:] = buffer
            self.torch_gen.set_state(tensors["torch_rng"].clone())
        except (KeyError, RuntimeError, ValueError) as exc:
            raise CheckpointError(f"the saved agent is incomplete or corrupt: {exc}") from None
        self.stored, self.baseline = int(meta["stored"]), meta["baseline"]
        self.noise, self.episodes = float(meta["noise"]), int(meta["episodes"])
        self.rng.bit_generator.state = meta["rng"]
