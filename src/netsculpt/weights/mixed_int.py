"""Mixed int8 / float under an ONNX Runtime latency budget, from direct hardware feedback (HAQ's idea).

Which conv / linear layers run int8 (per-channel weights, uint8 activations, ONNX Runtime's QDQ kernels)
and which stay float is chosen by the DDPG agent of :mod:`netsculpt.search.rl_agent`, walking the
layers under a budget in milliseconds. Latency is measured, not modelled from bit-operation counts.
The walk's clamp needs a predictor for partial choices: the all-int8 export is timed, then each
variant with one layer float (thread CPU clock, median), and a mixture is predicted as the all-int8
latency plus the measured extra of each float layer. Anchoring at all-int8 matters: a lone int8 layer
in a float graph pays Quantize/DequantizeLinear around it, so single-layer savings measured from the
float end were negative for early ResNet-20 layers and summed to a negative all-int8 latency (a first
version did that and missed the budget by 3x). The predictor only steers the walk: every candidate is
quantized, calibrated, scored on held-out batches through ONNX Runtime *and timed*, and the pick is the
best candidate whose measured latency is within the budget (all-int8 is always among the candidates).
The pick is re-calibrated on ``calibration_batches`` and timed again; that figure is reported.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from netsculpt.errors import ConfigError, PruningError, warn_user
from netsculpt.progress import info, track
from netsculpt.search.budget_walk import BudgetWalk
from netsculpt.search.rl_agent import AgentConfig, DDPGAgent
from netsculpt.weights.config import default_filter
from netsculpt.weights.quantize import Int8Config, OnnxModule, quantize_int8

AGENT_FILE = "mixed_int_agent.safetensors"


@dataclass
class MixedIntConfig:
    episodes: int = 16
    warmup: int = 4
    runs: int = 50
    search_calibration: int = 2
    calibration_batches: int = 8
    metric: str = "loss"
    seed: int = 0
    agent: AgentConfig = field(default_factory=lambda: AgentConfig(hidden=32, batch_size=8))

    def __post_init__(self) -> None:
        if not 0 <= self.warmup < self.episodes:
            raise ConfigError(f"warmup={self.warmup} must be in [0, episodes={self.episodes})")
        if self.metric not in ("accuracy", "loss"):
            raise ConfigError(f"metric={self.metric!r}: use 'accuracy' or 'loss'")


@dataclass
class MixedIntResult:
    model: OnnxModule
    int8_layers: list[str]
    predicted_ms: float
    measured_ms: float
    float_ms: float
    all_int8_ms: float
    budget_ms: float
    history: dict[str, Any]


def _time(path: Path, x: Tensor, runs: int) -> float:
    from netsculpt.measure.latency_model import median_time_ms
    from netsculpt.measure.onnx_runtime import _session

    session = _session(path)
    feeds = {session.get_inputs()[0].name: x.detach().cpu().numpy()}
    with _one_thread():
        return median_time_ms(lambda: session.run(None, feeds), runs, max(5, runs // 5), clock="thread")


class _one_thread:
    def __enter__(self) -> None:
        self.before = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc: Any) -> None:
        torch.set_num_threads(self.before)


class _IntWalkSpace:
    """Choices per layer: [int8, float] (0 / 1), or [float] where float costs nothing extra; cost in ms,
    predicted as the all-int8 latency plus the measured extra of each layer kept float."""

    def __init__(self, names: list[str], extra: np.ndarray, int8_ms: float, shapes: list[list[float]]):
        self.names, self.extra, self.int8_ms = names, extra, int8_ms
        self._choices = [np.array([0, 1]) if e > 0 else np.array([1]) for e in extra]
        self._features = np.column_stack([np.array(shapes, dtype=np.float64), np.maximum(extra, 0)])

    def choices(self, i: int) -> np.ndarray:
        return self._choices[i]

    def cost(self, values: np.ndarray) -> float:
        return float(self.int8_ms + sum(e for e, v in zip(self.extra, values) if v == 1 and e > 0))

    def to_choice(self, i: int, action: float) -> int:
        return 0 if len(self._choices[i]) == 1 else int(action >= 0.5)

    def to_action(self, i: int, index: int) -> float:
        return 1.0 if len(self._choices[i]) == 1 else 0.25 + 0.5 * index

    def features(self) -> np.ndarray:
        return self._features

    def weights(self) -> np.ndarray:
        return np.maximum(self.extra, 1e-9)


def quantize_mixed(
    model: nn.Module,
    example_inputs: Tensor,
    calibration_data: Any,
    held_batches: list[tuple[Tensor, Tensor]],
    budget_ms: float,
    out_dir: str | Path,
    config: MixedIntConfig | None = None,
    measured: tuple[float, dict[str, float], float] | None = None,
    *,
    resume: bool = False,
) -> MixedIntResult:
    """int8 for the layers the agent picks, float for the rest, so ONNX Runtime latency <= ``budget_ms``.

    ``measured``: ``(float_ms, extra_ms per layer, int8_ms)`` of an earlier call on the same model and
    machine (``result.float_ms``, ``result.history["extra_ms"]``, ``result.all_int8_ms``), to skip timing
    every layer again. The search state (the per-layer timings, every candidate's score and measured
    latency, the agent after every episode) is saved in ``out_dir/search/``; ``resume=True`` continues it
    (timings are not redone: they belong to this machine, which the caller vouches for by resuming)."""
    from netsculpt.search.amc_policy import load_agent, save_agent
    from netsculpt.search.state import SearchState, weights_fingerprint
    from netsculpt.train import evaluate

    config = config or MixedIntConfig()
    if not budget_ms > 0:
        raise ConfigError(f"budget_ms must be a positive number of milliseconds, got {budget_ms!r}")
    model = model.eval()
    layers = [(n, m) for n, m in model.named_modules() if n and default_filter(m, n)]
    if not layers:
        raise PruningError("nothing to act on: the model has no conv or linear layer to quantize")
    names = [n for n, _ in layers]
    calibration = list(calibration_data if isinstance(calibration_data, list) else _take(calibration_data, 8))
    out = Path(out_dir)
    fingerprint = {"method": "mixed-int8", "config": asdict(config), "budget_ms": float(budget_ms),
                   "layers": names, "weights": weights_fingerprint(model),
                   "held": [len(held_batches), sum(int(y.shape[0]) for _, y in held_batches)]}  # fmt: skip
    state = SearchState(out / "search", fingerprint, resume)
    saved = state.progress if state.resumed else {}
    if saved.get("timings"):
        t = saved["timings"]
        measured = (t["float_ms"], t["extra_ms"], t["int8_ms"])
    work = Path(tempfile.mkdtemp(prefix="mixed_int_", dir=out if out.exists() else None))

    def build(int8: set[str], batches: int, where: Path) -> OnnxModule:
        keep = lambda module, name: name in int8 and default_filter(module, name)  # noqa: E731
        cfg = Int8Config(calibration_batches=batches, filter_fn=keep)
        return quantize_int8(model, example_inputs, calibration[:batches], where, cfg)

    if measured is not None and set(measured[1]) == set(names):
        float_ms, int8_ms, extra = measured[0], measured[2], [measured[1][n] for n in names]
    else:  # each layer's timing is saved as it is taken: a killed run resumes the timing where it stopped
        partial = saved.get("timing_partial") or {}
        if "float_ms" in partial and "int8_ms" in partial:
            float_ms, int8_ms = partial["float_ms"], partial["int8_ms"]
        else:
            build(set(), 1, work / "float")
            float_ms = _time(work / "float" / "model.fp32.onnx", example_inputs, config.runs)
            int8_ms = _time(build(set(names), 1, work / "int8").path, example_inputs, config.runs)
        done = dict(partial.get("extra_ms") or {})
        for name in track(names, "ONNX Runtime latency, one layer float at a time"):
            if name not in done:
                q = build(set(names) - {name}, 1, work / "single")
                done[name] = _time(q.path, example_inputs, config.runs) - int8_ms
                state.save({"timing_partial": {"float_ms": float_ms, "int8_ms": int8_ms, "extra_ms": done}})
        extra = [done[name] for name in names]
    extra_arr = np.array(extra)
    timings = {"float_ms": float_ms, "int8_ms": int8_ms, "extra_ms": dict(zip(names, map(float, extra)))}
    shapes = [[float(np.prod(m.weight.shape)), m.weight.shape[0], m.weight.shape[1]] for _, m in layers]
    space = _IntWalkSpace(names, extra_arr, int8_ms, shapes)
    walk = BudgetWalk(space, budget_ms, tolerance=0.02, what="latency_ms")
    agent = DDPGAgent(walk.state_dim, config.agent, seed=config.seed)
    cache: dict[tuple[int, ...], tuple[float, float]] = {  # values -> (error or loss, measured ms)
        tuple(int(v) for v in k.split(",")): (float(a), float(b))
        for k, (a, b) in saved.get("cache", {}).items()
    }
    records: list[dict[str, Any]] = []
    agent_file = out / "search" / AGENT_FILE
    if state.resumed and agent_file.exists():
        records = load_agent(agent, agent_file)
        info(f"mixed int8: resuming after episode {len(records)} of {config.episodes}")

    def save() -> None:
        state.save({"timings": timings, "cache": {",".join(map(str, k)): list(v) for k, v in cache.items()}})

    def score(values: np.ndarray) -> float:
        key = tuple(int(v) for v in values)
        if key not in cache:
            int8 = {n for n, v in zip(names, key) if v == 0}
            q = build(int8, config.search_calibration, work / "candidate")
            accuracy, loss = evaluate(q, held_batches)
            ms = _time(q.path, example_inputs, config.runs)  # direct feedback: every candidate is timed
            cache[key] = (1 - accuracy if config.metric == "accuracy" else loss, ms)
            save()
        return cache[key][0]

    save()  # the timings, before any candidate
    score(np.zeros(len(names)))  # all int8: the fastest mixture, feasible whenever anything is
    for episode in track(range(len(records), config.episodes), "mixed int8 episodes"):
        warm = episode < config.warmup
        mode = "random" if warm else "noise"
        ep = walk.run(lambda s, lo, hi, m=mode: agent.act(s, lo, hi, m))
        reward = -score(ep.values)
        agent.observe_episode(ep.states, ep.actions, reward)
        if not warm:
            agent.learn(len(ep.states))
        agent.end_episode(warm)
        records.append({"episode": episode, "reward": reward, "predicted_ms": ep.cost,
                        "measured_ms": cache[tuple(int(v) for v in ep.values)][1],
                        "float": ep.values.tolist()})  # fmt: skip
        save_agent(agent, agent_file, records)
    within = [k for k, (_, ms) in cache.items() if ms <= budget_ms]
    best = min(within, key=lambda k: cache[k][0]) if within else min(cache, key=lambda k: cache[k][1])
    int8 = [n for n, v in zip(names, best) if v == 0]
    out.mkdir(parents=True, exist_ok=True)
    final = build(set(int8), config.calibration_batches, out)
    final_ms = _time(final.path, example_inputs, config.runs)
    shutil.rmtree(work, ignore_errors=True)
    predicted = space.cost(np.array(best))
    info(f"mixed int8: {len(int8)}/{len(names)} layers int8, {final_ms:.3f} ms measured (budget {budget_ms})")
    if final_ms > budget_ms:  # the timing on this machine drifted, or no candidate was measured within it
        warn_user(
            f"mixed int8: the chosen model measured {final_ms:.3f} ms, over the {budget_ms} ms budget "
            f"({len(within)} of {len(cache)} candidates were measured within it); it is the best there "
            "was: raise the budget, or time it again on a quieter machine",
            UserWarning,
        )
    history = {"extra_ms": dict(zip(names, extra_arr.tolist())), "int8_ms": int8_ms, "episodes": records,
               "candidates_within_budget": len(within), "candidates": len(cache)}  # fmt: skip
    return MixedIntResult(final, int8, predicted, final_ms, float_ms, int8_ms, float(budget_ms), history)


def _take(loader: Iterable[Any], n: int) -> list[Any]:
    out = []
    for batch in loader:
        out.append(batch)
        if len(out) >= n:
            break
    return out
