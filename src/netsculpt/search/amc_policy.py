"""AMC's files: the per-episode agent checkpoint, and the learned policy applied to another model.

``amc_agent.safetensors`` holds every tensor of the agent (networks, Adam moments, replay buffer, torch
RNG) with the JSON half (counters, baseline, noise, numpy RNG, the episode records) in its metadata; it
is rewritten atomically after each episode. ``policy.safetensors`` + ``policy.json`` hold the actor and
critic and what the walk needs to rebuild the state on another model: the state features are relative
(per-model normalised, fractions of cost), so a policy learned on resnet20_cifar reads resnet56_cifar's
groups the same way. Nothing here is unpickled.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from netsculpt.errors import CheckpointError, ConfigError
from netsculpt.fileio import atomic_write, write_json
from netsculpt.search.rl_agent import AgentConfig, DDPGAgent

POLICY_TENSORS, POLICY_JSON = "policy.safetensors", "policy.json"
POLICY_VERSION = 1
NETS = ("actor", "critic")


def save_agent(agent: DDPGAgent, path: Path, records: list[dict[str, Any]]) -> None:
    from safetensors.torch import save_file

    meta = {"agent": json.dumps(agent.meta()), "records": json.dumps(records)}
    tensors = agent.tensors()
    atomic_write(path, lambda p: save_file(tensors, str(p), metadata=meta))


def read_agent_file(path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """Tensors and string metadata of an agent checkpoint or saved policy (AMC and N2N share the format)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read {str(path)!r} as safetensors: {exc}") from None


def load_agent(agent: DDPGAgent, path: Path) -> list[dict[str, Any]]:
    """Restore ``agent`` from ``path``; returns the episode records saved with it."""
    from netsculpt.jsoncheck import parse_json

    tensors, meta = read_agent_file(path)
    if "agent" not in meta or "records" not in meta:
        raise CheckpointError(f"{str(path)!r} is not an AMC agent checkpoint (no agent metadata)")
    info, records = parse_json(meta["agent"], str(path)), parse_json(meta["records"], str(path))
    if not isinstance(info, dict) or not isinstance(records, list):
        raise CheckpointError(f"{str(path)!r} has corrupt agent metadata")
    agent.restore(tensors, info)
    if len(records) != agent.episodes:
        raise CheckpointError(f"{str(path)!r}: {len(records)} episode records for {agent.episodes} episodes")
    return records


def save_policy(agent: DDPGAgent, walk: Any, out: Path, config: Any, target: Any) -> list[Path]:
    """``policy.safetensors`` (actor + critic weights) and ``policy.json`` (how to rebuild the state)."""
    from safetensors.torch import save_file

    tensors = {
        f"{n}.{k}": v.detach().contiguous() for n in NETS for k, v in getattr(agent, n).state_dict().items()
    }
    atomic_write(out / POLICY_TENSORS, lambda p: save_file(tensors, str(p)))
    info = {
        "version": POLICY_VERSION,
        "method": "amc",
        "state_dim": agent.state_dim,
        "agent": asdict(agent.config),
        "target": {target.metric: target.value},
        "space": {k: getattr(config, k) for k in ("criterion", "min_ratio", "round_to", "min_channels")},
        "tolerance": config.tolerance,
        "groups": walk.n,
        "episodes": agent.episodes,
    }
    return [out / POLICY_TENSORS, write_json(out / POLICY_JSON, info)]


def load_policy(path: str | Path) -> tuple[DDPGAgent, dict[str, Any]]:
    """The agent of a saved policy (``path``: its folder or ``policy.json``) and its JSON."""
    from netsculpt.jsoncheck import read_json_file

    folder = Path(path)
    folder = folder.parent if folder.suffix == ".json" else folder
    if not (folder / POLICY_JSON).is_file() or not (folder / POLICY_TENSORS).is_file():
        raise ConfigError(
            f"no AMC policy in {str(folder)!r}: expected {POLICY_JSON} and {POLICY_TENSORS} "
            "(written by `netsculpt search --method amc --out DIR`)"
        )
    info = read_json_file(folder / POLICY_JSON)
    if not isinstance(info, dict) or info.get("version") != POLICY_VERSION or info.get("method") != "amc":
        raise CheckpointError(
            f"{str(folder / POLICY_JSON)!r} is not an AMC policy (version {POLICY_VERSION})"
        )
    try:
        agent = DDPGAgent(int(info["state_dim"]), AgentConfig(**info["agent"]))
    except (TypeError, KeyError, ValueError) as exc:
        raise CheckpointError(f"{str(folder / POLICY_JSON)!r} has bad agent settings: {exc}") from None
    tensors, _ = read_agent_file(folder / POLICY_TENSORS)
    for name in NETS:
        net: nn.Module = getattr(agent, name)
        try:
            net.load_state_dict({k: tensors[f"{name}.{k}"] for k in net.state_dict()})
        except (KeyError, RuntimeError) as exc:
            raise CheckpointError(
                f"{str(folder / POLICY_TENSORS)!r} does not fit the policy: {exc}"
            ) from None
        getattr(agent, f"{name}_target").load_state_dict(net.state_dict())
    return agent, info


def warm_start(agent: DDPGAgent, path: str | Path) -> None:
    """Initialise ``agent``'s networks (and targets) from a saved policy: transfer to a related model."""
    source, _ = load_policy(path)
    if source.state_dim != agent.state_dim or source.config.hidden != agent.config.hidden:
        raise ConfigError(
            f"the policy in {str(path)!r} has state size {source.state_dim} and "
            f"{source.config.hidden} hidden units; this search needs {agent.state_dim} and "
            f"{agent.config.hidden} (set hidden to match)"
        )
    for name in NETS:
        getattr(agent, name).load_state_dict(getattr(source, name).state_dict())
        getattr(agent, f"{name}_target").load_state_dict(getattr(source, name).state_dict())


def apply_policy(
    path: str | Path,
    model: nn.Module,
    example_inputs: Any,
    target: Any = None,
    train_loader: Any = None,
    *,
    ignored: tuple[str, ...] = (),
):
    """Prune ``model`` with a saved AMC policy, no search: the actor walks this model's groups once,
    without noise, under ``target`` (default: the policy's own). Returns a :class:`PrunePlan`."""
    from netsculpt.graph import trace
    from netsculpt.importance import get_criterion
    from netsculpt.search.amc import make_walk
    from netsculpt.search.config import parse_targets
    from netsculpt.search.space import SearchSpace

    agent, info = load_policy(path)
    (goal,) = parse_targets(target if target is not None else info["target"])[:1]
    if goal.metric == "latency":
        raise ConfigError("apply_policy meets MACs or params targets; for latency run the AMC search")
    space_info = info["space"]
    graph = trace(model, example_inputs, ignored=ignored)
    criterion = get_criterion(space_info["criterion"])
    if criterion.needs - {"weights"} and train_loader is None:
        raise ConfigError(
            f"the policy's criterion {space_info['criterion']!r} learns from data: pass train_loader"
        )
    scores = criterion.score(model, graph, train_loader)
    space = SearchSpace(
        model,
        example_inputs,
        graph,
        scores,
        min_ratio=space_info["min_ratio"],
        round_to=space_info["round_to"],
        min_channels=space_info["min_channels"],
    )
    walk = make_walk(space, model, goal.metric, goal.value, float(info["tolerance"]))
    if walk.state_dim != agent.state_dim:
        raise ConfigError(
            f"the policy reads {agent.state_dim} state features; this model gives {walk.state_dim}"
        )
    counts = walk.run(lambda s, lo, hi: agent.act(s, lo, hi, "greedy")).values.astype(np.int64)
    meta = {
        "search": "amc-policy",
        "policy": str(path),
        "target": {goal.metric: goal.value},
        "predicted": space.costs(counts),
        "widths": space.widths(counts),
    }
    return space.plan(counts, meta)
