"""N2N: REINFORCE moves both policies toward better actions, actions build valid smaller students, the
search meets its budget, and a killed search resumes to the uninterrupted result."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

import netsculpt as ns
from netsculpt.errors import ConfigError
from netsculpt.graph import trace
from netsculpt.search import apply_search_plan, list_searchers, search_widths
from netsculpt.search.n2n import N2NConfig, warm_start
from netsculpt.search.n2n_policy import N2NAgent, Reinforce, RemovalPolicy, ShrinkPolicy
from netsculpt.search.n2n_students import StudentSpace, n2n_reward
from netsculpt.search.space import SearchSpace
from tests.search import _tiny


class Block(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(out + x)


class TinyResNet(nn.Module):
    """A stem, ``depth`` identity residual blocks, a head: removable blocks and prunable groups."""

    def __init__(self, depth: int = 4) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.blocks = nn.Sequential(*[Block(8) for _ in range(depth)])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, _tiny.CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.blocks(self.stem(x))).flatten(1))


@pytest.fixture(scope="module")
def resnet() -> nn.Module:
    torch.manual_seed(0)
    model = TinyResNet()
    train, _ = _tiny.loaders()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    for _ in range(3):
        for x, y in train:
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    return model.eval()


def _config(**kw) -> N2NConfig:
    base = {
        "remove_episodes": 4,
        "shrink_episodes": 4,
        "rollouts": 2,
        "hidden": 8,
        "kd_steps": 2,
        "eval_batches": 1,
        "full_batches": 2,
    }
    return N2NConfig(**{**base, **kw})


def _students(model: nn.Module, metric: str = "macs") -> StudentSpace:
    x = _tiny.example()
    graph = trace(model, x)
    scores = {
        g.id: torch.rand(g.size, generator=torch.Generator().manual_seed(1)).numpy() for g in graph.groups
    }
    return StudentSpace(SearchSpace(model, x, graph, scores), x, metric)


def test_removal_policy_gradient_moves_toward_the_better_action() -> None:
    """Reward 1 per block matching keep/remove/keep/remove/remove: the keep probabilities follow it."""
    torch.manual_seed(0)
    policy, gen = RemovalPolicy(4, 8), torch.Generator().manual_seed(0)
    learner = Reinforce(policy, lr=0.05, decay=0.8)
    x = torch.rand(5, 4, generator=torch.Generator().manual_seed(2))
    best = [1, 0, 1, 0, 0]
    before = torch.sigmoid(policy(x)).detach()
    assert torch.allclose(before, torch.full((5,), 0.5))
    for _ in range(60):
        rollouts = []
        for _ in range(4):
            a = policy.sample(x, gen)
            rollouts.append((a, float(sum(int(u == v) for u, v in zip(a, best)))))
        learner.update(x, rollouts)
    after = torch.sigmoid(policy(x)).detach()
    assert all((p > 0.8) if b else (p < 0.2) for p, b in zip(after.tolist(), best))
    assert policy.sample(x, gen, greedy=True) == best


def test_shrink_policy_gradient_moves_toward_the_better_fraction() -> None:
    """Reward -|fraction - 0.3| per layer: the greedy fractions end at 0.3."""
    torch.manual_seed(0)
    fractions = [0.1, 0.3, 0.5, 0.7, 1.0]
    policy, gen = ShrinkPolicy(3, 8, len(fractions)), torch.Generator().manual_seed(0)
    learner = Reinforce(policy, lr=0.05, decay=0.8)
    x = torch.rand(4, 3, generator=torch.Generator().manual_seed(3))
    start = policy.log_prob(x, [1, 1, 1, 1]).item()
    for _ in range(80):
        rollouts = []
        for _ in range(4):
            a = policy.sample(x, gen)
            rollouts.append((a, -sum(abs(fractions[i] - 0.3) for i in a)))
        learner.update(x, rollouts)
    assert policy.sample(x, gen, greedy=True) == [1, 1, 1, 1]
    assert policy.log_prob(x, [1, 1, 1, 1]).item() > start + 2.0


def test_reward_is_the_papers() -> None:
    assert n2n_reward(0.0, 0.9, 0.9) == 0.0
    assert n2n_reward(0.5, 0.9, 0.9) == pytest.approx(0.75)
    assert n2n_reward(0.8, 0.45, 0.9) == pytest.approx(0.8 * 1.2 * 0.5)


def test_removal_and_shrink_actions_build_a_valid_smaller_model(resnet) -> None:
    students = _students(resnet)
    assert students.names == ["blocks.0", "blocks.1", "blocks.2", "blocks.3"]
    removed = students.removed([1, 0, 1, 0])
    assert removed == ["blocks.1", "blocks.3"]
    active = students.active_groups(removed)
    assert len(active) < len(students.space)  # the removed blocks' inner groups are not shrunk
    counts = students.counts({i: 0.5 for i in active})
    student = students.build(removed, counts)
    x = _tiny.example()
    cost = students.cost(student)
    assert 0 < cost["macs"] < 0.5 and 0 < cost["params"] < 0.5
    assert student(x).shape == (1, _tiny.CLASSES)
    assert resnet(x).shape == (1, _tiny.CLASSES) and students.cost(resnet) == {"macs": 1.0, "params": 1.0}
    # the same student from the plan a search returns, and through save/load (the edits are recorded)
    plan = students.space.plan(
        counts, {"remove_blocks": [u.to_dict() for u in students.units if u.name in removed]}
    )
    again = apply_search_plan(resnet, plan, x)
    assert torch.allclose(again(x), student(x), atol=1e-6)
    # removal only is exact: equal to the teacher with those branches zeroed
    only = students.build(removed, students.space.full())
    hooks = [
        resnet.get_submodule(f"{b}.bn2").register_forward_hook(lambda m, i, o: torch.zeros_like(o))
        for b in removed
    ]
    try:
        reference = resnet(x)
    finally:
        for h in hooks:
            h.remove()
    assert (only(x) - reference).abs().max() <= 1e-4


def test_n2n_search_meets_the_budget_and_builds_the_student(resnet, tmp_path: Path) -> None:
    assert "n2n" in list_searchers()
    train, val = _tiny.loaders()
    x = _tiny.example()
    result = search_widths(resnet, x, "n2n", "macs=0.6", train, val, _config(), out_dir=tmp_path)
    meta = result.plan.meta
    assert meta["predicted"]["macs"] <= 0.6 * 1.02 and meta["estimate"]["after"] == "kd"
    students = result.history["students"]
    # every distinct student distilled and scored is counted (it was "0 cheap + 0 full"), cache hits not
    distilled = {s["key"] for s in students if s["accuracy"] is not None}
    policy = result.history["policy"]
    distilled.add(json.dumps([sorted(policy["removed"]), policy["widths"]]))
    assert result.evaluated == {"cheap": 0, "full": len(distilled)} and len(distilled) > 1
    assert [s["stage"] for s in students] == ["removal"] * 4 + ["shrink"] * 4
    assert all(s["reward"] == -1.0 for s in students if s["stage"] == "shrink" and not s["within"])
    small = apply_search_plan(resnet, result.plan, x)
    assert ns.measure(small, x, latency=False).macs / ns.measure(resnet, x, latency=False).macs == (
        pytest.approx(meta["predicted"]["macs"])
    )
    assert (tmp_path / "policy.safetensors").exists() and (tmp_path / "n2n_agent.safetensors").exists()
    assert json.loads((tmp_path / "policy.json").read_text())["method"] == "n2n"
    # warm start from that policy (the LSTMs read any number of blocks)
    warm = search_widths(resnet, x, "n2n", "macs=0.6", train, val, _config(policy=str(tmp_path)))
    assert len(warm.history["students"]) == 8


def test_a_shallower_models_policy_warm_starts_a_deeper_search(resnet, tmp_path: Path) -> None:
    """Transfer across depths: both policies read per-block / per-group features of a fixed size, so every
    weight of a 4-block model's policy loads into the agent of a 7-block model, which then searches."""
    train, val = _tiny.loaders()
    x = _tiny.example()
    search_widths(resnet, x, "n2n", "macs=0.6", train, val, _config(), out_dir=tmp_path)
    saved = json.loads((tmp_path / "policy.json").read_text())
    torch.manual_seed(1)
    deep = TinyResNet(depth=7).eval()
    students = _students(deep)
    assert len(students.names) == 7 > len(saved["blocks"]) == 4
    agent = N2NAgent(
        students.block_x.shape[1], students.group_x.shape[1], len(_config().fractions), 8, 0.02, 0.8, 1
    )
    cold = agent.weights()
    warm_start(agent, tmp_path, _config())
    loaded = agent.weights()
    assert set(loaded) == set(cold) and any(not torch.equal(loaded[k], cold[k]) for k in cold)
    assert all(torch.equal(loaded[k], v) for k, v in load_file(str(tmp_path / "policy.safetensors")).items())
    result = search_widths(deep, x, "n2n", "macs=0.6", train, val, _config(policy=str(tmp_path)))
    assert result.plan.meta["predicted"]["macs"] <= 0.6 * 1.02
    with pytest.raises(ConfigError, match="hidden=8"):
        warm_start(agent, tmp_path, _config(hidden=16))


class Killed(Exception):
    pass


def test_killed_n2n_search_resumes_to_the_same_state(resnet, tmp_path: Path) -> None:
    train, val = _tiny.loaders()
    args = (resnet, _tiny.example(), "n2n", "macs=0.6", train, val)
    reference = search_widths(*args, _config(rollouts=3))

    def kill(progress: dict) -> None:
        if progress.get("episode") == 4:  # mid-update in the shrink stage: one pending rollout
            raise Killed

    with pytest.raises(Killed):
        search_widths(*args, _config(rollouts=3), out_dir=tmp_path, on_step=kill)
    resumed = search_widths(*args, _config(rollouts=3), out_dir=tmp_path, resume=True)
    strip = ["episode", "stage", "actions", "removed", "widths", "reward", "accuracy"]
    assert [[s[k] for k in strip] for s in resumed.history["students"]] == [
        [s[k] for k in strip] for s in reference.history["students"]
    ]
    assert resumed.plan.keep == reference.plan.keep
    assert resumed.plan.meta["remove_blocks"] == reference.plan.meta["remove_blocks"]


def test_bad_n2n_settings_are_clear(resnet, tmp_path: Path) -> None:
    train, val = _tiny.loaders()
    with pytest.raises(ConfigError, match="MACs or parameters"):
        _students(resnet, "latency")
    with pytest.raises(ConfigError, match="fractions"):
        N2NConfig(fractions=(0.0, 0.5))
    with pytest.raises(ConfigError, match="no N2N policy"):
        search_widths(
            resnet, _tiny.example(), "n2n", "macs=0.6", train, val, _config(policy=str(tmp_path / "none"))
        )
    with pytest.raises(ConfigError, match="no N2N student met the budget"):
        search_widths(
            resnet,
            _tiny.example(),
            "n2n",
            "macs=0.02",
            train,
            val,
            _config(remove_episodes=0, shrink_episodes=2),
        )
    np.testing.assert_equal(N2NConfig(fractions=(1.0, 0.5, 0.5)).fractions, (0.5, 1.0))


def test_screened_n2n_distils_only_the_best_predicted_shrink_student(resnet, tmp_path: Path) -> None:
    """With predictor="gcn" the shrink stage samples screen_pool students per step; the screen learns
    from the distilled students' own rewards (no cheap scorer runs) and, once it screens, picks one."""
    train, val = _tiny.loaders()
    x = _tiny.example()
    config = _config(remove_episodes=0, shrink_episodes=10, predictor="gcn", predictor_min=3,
                     predictor_epochs=40, screen_pool=3, screen_trust=-1)  # fmt: skip
    result = search_widths(resnet, x, "n2n", "macs=0.6", train, val, config, out_dir=tmp_path)
    students = result.history["students"]
    shrink = [s for s in students if s["stage"] == "shrink"]
    assert shrink == students and all(s["pool"] == 3 for s in shrink)
    assert 10 <= len(shrink) <= 12  # the last screened step's picks are all distilled
    rounds = result.history["predictor"]["rounds"]
    assert rounds[0]["fallback"] and any(not r["fallback"] and r["scored"] == 1 for r in rounds)
    assert result.evaluated["cheap"] == 0  # N2N's rewards come from distillation, never the cheap scorer
    assert result.plan.meta["predicted"]["macs"] <= 0.6 * 1.02
    assert json.loads((tmp_path / "predictor.json").read_text())["trained_on"] >= 3


def test_a_model_without_removable_blocks_runs_the_shrink_stage_only(monkeypatch, tmp_path: Path) -> None:
    """A residual-free model (VGG, SqueezeNet, DenseNet) has no block descriptors: N2N skips removal and
    says so, instead of failing to normalise an empty feature table."""
    from netsculpt.search import scoring

    said: list[str] = []
    monkeypatch.setattr(scoring, "info", said.append)
    model = _tiny.trained_model(epochs=1)
    train, val = _tiny.loaders()
    x = _tiny.example()
    assert _students(model).block_x.shape == (0, 7)
    result = search_widths(model, x, "n2n", "macs=0.6", train, val, _config(), out_dir=tmp_path)
    assert any("shrink stage only" in line for line in said)
    assert {s["stage"] for s in result.history["students"]} == {"shrink"}
    assert result.plan.meta["remove_blocks"] == [] and result.plan.meta["predicted"]["macs"] <= 0.6 * 1.02
