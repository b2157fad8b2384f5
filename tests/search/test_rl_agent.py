"""The DDPG agent shared by AMC, HAQ and mixed int8: its settings must all take effect."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from netsculpt.errors import ConfigError
from netsculpt.search.rl_agent import AgentConfig, DDPGAgent


def _agent(updates_per_step: int) -> DDPGAgent:
    agent = DDPGAgent(3, AgentConfig(hidden=8, batch_size=4, updates_per_step=updates_per_step), seed=0)
    rng = np.random.default_rng(0)
    states = [rng.random(3).astype(np.float32) for _ in range(6)]
    agent.observe_episode(states, [0.5] * 6, reward=-1.0)
    return agent


def _flat(agent: DDPGAgent) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in agent.actor.parameters()])


def test_updates_per_step_multiplies_the_updates_after_an_episode() -> None:
    # it was stored and never read: 3 updates per transition must equal three times the plain schedule
    tripled, plain = _agent(3), _agent(1)
    assert len(tripled.learn(2)) == 6
    for _ in range(3):
        plain.learn(2)
    assert torch.equal(_flat(tripled), _flat(plain))
    assert not torch.equal(_flat(tripled), _flat(_agent(1)))


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_updates_per_step_is_checked(bad: object) -> None:
    with pytest.raises(ConfigError, match="updates_per_step"):
        AgentConfig(updates_per_step=bad)  # type: ignore[arg-type]
