"""AMC: the DDPG agent meets the budget by clamping, checkpoints every episode and resumes exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from netsculpt.errors import ConfigError, PruningError
from netsculpt.graph import trace
from netsculpt.prune import apply_plan
from netsculpt.search import search_widths
from netsculpt.search.amc import AMCConfig, make_walk
from netsculpt.search.amc_policy import apply_policy, load_policy
from netsculpt.search.rl_agent import DDPGAgent, truncated_normal
from netsculpt.search.space import SearchSpace
from tests.search import _tiny


class Killed(Exception):
    pass


def _config(**kw) -> AMCConfig:
    base = {"episodes": 8, "warmup": 3, "batch_size": 4, "hidden": 8, "eval_batches": 1, "full_batches": 2}
    return AMCConfig(**{**base, **kw})


def _space(tiny) -> SearchSpace:
    graph = trace(tiny.model, tiny.example)
    scores = {g.id: torch.rand(g.size).numpy() for g in graph.groups}
    return SearchSpace(tiny.model, tiny.example, graph, scores)


@pytest.mark.parametrize("target", [0.3, 0.5, 0.8])
def test_clamped_random_walks_land_within_two_percent_of_the_budget(tiny, target) -> None:
    space = _space(tiny)
    walk = make_walk(space, tiny.model, "macs", target, 0.02)
    rng = np.random.default_rng(0)
    for _ in range(10):  # whatever the agent asks for, the executed plan meets the budget
        episode = walk.run(lambda s, lo, hi: float(rng.uniform(0, 1)))
        counts = episode.values.astype(np.int64)
        macs = space.costs(counts)["macs"]
        assert macs <= target + 1e-9
        if macs < target * 0.98:  # only when no single channel more fits (three groups of 8-16 here)
            for i in range(len(space)):
                up = counts.copy()
                up[i] = min(up[i] + 1, space.sizes[i])
                assert up[i] == counts[i] or space.cost(up, "macs") > target
        assert len(episode.states) == len(space) and all(s.shape == (walk.state_dim,) for s in episode.states)


def test_unreachable_budget_and_nothing_to_act_on_are_clear(tiny) -> None:
    space = _space(tiny)
    with pytest.raises(PruningError, match="can never be met"):
        make_walk(space, tiny.model, "macs", 0.001, 0.02)
    with pytest.raises(ConfigError, match="warmup"):
        AMCConfig(episodes=5, warmup=5)


def test_truncated_normal_stays_in_bounds() -> None:
    rng = np.random.default_rng(0)
    samples = [truncated_normal(rng, 0.9, 0.5, 0.2, 0.6) for _ in range(200)]
    assert min(samples) >= 0.2 and max(samples) <= 0.6
    assert truncated_normal(rng, 0.3, 0.0, 0.0, 1.0) == 0.3


def test_agent_learns_a_one_step_bandit() -> None:
    """Reward -|a - 0.8|: after training, the noiseless actor's action is near 0.8 (a bound of 0.15)."""
    agent = DDPGAgent(2, seed=0)
    agent.config.batch_size = 16
    state = np.array([0.5, 0.5], dtype=np.float32)
    for episode in range(300):
        a = agent.act(state, 0.0, 1.0, "random" if episode < 50 else "noise")
        agent.observe_episode([state], [a], -abs(a - 0.8))
        for _ in range(2):
            agent.update()
        agent.end_episode(episode < 50)
    assert abs(agent.act(state, 0.0, 1.0, "greedy") - 0.8) < 0.15


def test_amc_search_meets_the_budget_and_saves_a_policy(tiny, tmp_path: Path) -> None:
    result = search_widths(
        tiny.model, tiny.example, "amc", "macs=0.5", tiny.train, tiny.val, _config(), out_dir=tmp_path
    )
    macs = result.plan.meta["predicted"]["macs"]
    # one channel of TinyCNN's 16-wide groups is ~5% of its MACs: the walk lands within one step
    assert 0.45 <= macs <= 0.5 + 1e-9
    episodes = result.history["episodes"]
    assert len(episodes) == 8 and [e["warmup"] for e in episodes[:4]] == [True, True, True, False]
    assert episodes[-1]["noise"] < 0.5  # decayed after the warm-up
    assert all(0.45 <= e["cost"] <= 0.5 + 1e-9 for e in episodes)
    small = apply_plan(tiny.model, result.plan, tiny.example)
    assert small(tiny.example).shape == (1, _tiny.CLASSES)
    agent, info = load_policy(tmp_path)
    assert info["target"] == {"macs": 0.5} and agent.state_dim == info["state_dim"]
    assert (tmp_path / "episodes.json").exists()


def test_killed_amc_search_resumes_from_its_last_episode(tiny, tmp_path: Path) -> None:
    args = (tiny.model, tiny.example, "amc", "macs=0.5", tiny.train, tiny.val)
    reference = search_widths(*args, _config())

    def kill(progress: dict) -> None:
        if progress.get("episode") == 4:
            raise Killed

    with pytest.raises(Killed):
        search_widths(*args, _config(), out_dir=tmp_path, on_step=kill)
    saved = json.loads((tmp_path / "search_state.json").read_text())
    assert saved["progress"]["episode"] == 4
    resumed = search_widths(*args, _config(), out_dir=tmp_path, resume=True)
    assert [e["widths"] for e in resumed.history["episodes"]] == [
        e["widths"] for e in reference.history["episodes"]
    ]
    assert [e["reward"] for e in resumed.history["episodes"]] == [
        e["reward"] for e in reference.history["episodes"]
    ]
    assert resumed.plan.keep == reference.plan.keep


def test_policy_applies_to_another_model_of_the_family(tiny, tmp_path: Path) -> None:
    search_widths(
        tiny.model, tiny.example, "amc", "macs=0.5", tiny.train, tiny.val, _config(), out_dir=tmp_path
    )
    torch.manual_seed(3)
    other = _tiny.TinyCNN().eval()  # same family, other weights
    plan = apply_policy(tmp_path, other, tiny.example, "macs=0.6")
    assert 0.55 <= plan.meta["predicted"]["macs"] <= 0.6 + 1e-9
    small = apply_plan(other, plan, tiny.example)
    assert small(tiny.example).shape == (1, _tiny.CLASSES)
    with pytest.raises(ConfigError, match="no AMC policy"):
        apply_policy(tmp_path / "missing", other, tiny.example)


@pytest.mark.slow
def test_amc_candidates_run_on_worker_processes(tiny) -> None:
    """The reward comes from the shared scorer, so local workers give the serial run's episodes."""
    from netsculpt.search import ProcessExecutor

    args = (tiny.model, tiny.example, "amc", "macs=0.5", tiny.train, tiny.val)
    serial = search_widths(*args, _config(episodes=4, warmup=2))
    pooled = search_widths(*args, _config(episodes=4, warmup=2), executor=ProcessExecutor(1))
    assert [e["reward"] for e in pooled.history["episodes"]] == [
        e["reward"] for e in serial.history["episodes"]
    ]
    assert pooled.plan.keep == serial.plan.keep


def test_screened_amc_scores_the_best_predicted_rollout_of_each_pool(tiny, tmp_path: Path) -> None:
    """With predictor="gcn" each learning step rolls out screen_pool candidates; until the predictor has
    data (and trust) all are scored and played, then only the best-predicted one: ``episodes`` still
    counts the scored candidates, and the run ends with the policy and the predictor saved."""
    config = _config(episodes=14, warmup=4, predictor="gcn", predictor_min=4, predictor_epochs=40,
                     screen_pool=3, screen_trust=-1)  # fmt: skip
    result = search_widths(tiny.model, tiny.example, "amc", "macs=0.5", tiny.train, tiny.val, config,
                           out_dir=tmp_path)  # fmt: skip
    episodes = result.history["episodes"]
    assert 14 <= len(episodes) <= 14 + 2 and all(e["pool"] == 1 for e in episodes[:4])  # warm-up: plain
    assert all(e["pool"] == 3 for e in episodes[4:])
    rounds = result.history["predictor"]["rounds"]
    screened = [r for r in rounds if not r["fallback"]]
    assert screened and all(r["scored"] == 1 and r["pool"] <= 3 for r in screened)
    assert result.evaluated["cheap"] <= len(episodes)  # each scored candidate once; the rest never
    assert 0.45 <= result.plan.meta["predicted"]["macs"] <= 0.5 + 1e-9
    assert (tmp_path / "predictor.json").exists() and (tmp_path / "policy.json").exists()
