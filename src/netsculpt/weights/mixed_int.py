"""Mixed int8 / float under an ONNX Runtime latency budget, from direct hardware feedback (HAQ's idea).

Which conv / linear layers run int8 (per-channel weights, uint8 activations, ONNX Runtime's QDQ kernels)
and which stay float is chosen by the DDPG agent of :mod:`netsculpt.search.rl_agent`, walking the
layers under a budget in milliseconds. Latency is measured, not modelled from bit-operation counts:
the float export and every single-layer-int8 variant are timed in ONNX Runtime on this machine (thread
CPU clock, median), and a mixture's latency is predicted as the float latency minus the measured saving
of each int8 layer. A layer whose int8 variant is not faster is kept float (it would only cost
accuracy). Each candidate the agent proposes is quantized and calibrated for real and scored on
held-out batches through ONNX Runtime; the chosen mixture is re-calibrated on ``calibration_batches``
and timed end to end, and that measured latency is what is reported against the budget.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from netsculpt.errors import ConfigError, PruningError
from netsculpt.progress import info, track
from netsculpt.search.budget_walk import BudgetWalk
from netsculpt.search.rl_agent import AgentConfig, DDPGAgent
from netsculpt.weights.config import default_filter
from netsculpt.weights.quantize import Int8Config, OnnxModule, quantize_int8


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
    """Choices per layer: [int8, float] (0 / 1), or [float] where int8 saves nothing; cost in ms."""

    def __init__(self, names: list[str], savings: np.ndarray, float_ms: float, shapes: list[list[float]]):
        self.names, self.savings, self.float_ms = names, savings, float_ms
        self._choices = [np.array([0, 1]) if s > 0 else np.array([1]) for s in savings]
        self._features = np.column_stack([np.array(shapes, dtype=np.float64), np.maximum(savings, 0)])

    def choices(self, i: int) -> np.ndarray:
        return self._choices[i]

    def cost(self, values: np.ndarray) -> float:
        return float(self.float_ms - sum(s for s, v in zip(self.savings, values) if v == 0 and s > 0))

    def to_choice(self, i: int, action: float) -> int:
        return 0 if len(self._choices[i]) == 1 else int(action >= 0.5)

    def to_action(self, i: int, index: int) -> float:
        return 1.0 if len(self._choices[i]) == 1 else 0.25 + 0.5 * index

    def features(self) -> np.ndarray:
        return self._features

    def weights(self) -> np.ndarray:
        return np.maximum(self.savings, 1e-9)


def quantize_mixed(
    model: nn.Module,
    example_inputs: Tensor,
    calibration_data: Any,
    held_batches: list[tuple[Tensor, Tensor]],
    budget_ms: float,
    out_dir: str | Path,
    config: MixedIntConfig | None = None,
    measured: tuple[float, dict[str, float]] | None = None,
) -> MixedIntResult:
    """int8 for the layers the agent picks, float for the rest, so ONNX Runtime latency <= ``budget_ms``.

    ``measured``: ``(float_ms, savings_ms per layer)`` of an earlier call on the same model and machine
    (``result.float_ms``, ``result.history["savings_ms"]``), to skip timing every layer again."""
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
    work = Path(tempfile.mkdtemp(prefix="mixed_int_", dir=out if out.exists() else None))

    def build(int8: set[str], batches: int, where: Path) -> OnnxModule:
        keep = lambda module, name: name in int8 and default_filter(module, name)  # noqa: E731
        cfg = Int8Config(calibration_batches=batches, filter_fn=keep)
        return quantize_int8(model, example_inputs, calibration[:batches], where, cfg)

    if measured is not None and set(measured[1]) == set(names):
        float_ms, savings = measured[0], [measured[1][n] for n in names]
    else:
        build(set(), 1, work / "float")
        float_ms = _time(work / "float" / "model.fp32.onnx", example_inputs, config.runs)
        savings = []
        for name in track(names, "ONNX Runtime latency per int8 layer"):
            q = build({name}, 1, work / "single")
            savings.append(float_ms - _time(q.path, example_inputs, config.runs))
    savings_arr = np.array(savings)
    shapes = [[float(np.prod(m.weight.shape)), m.weight.shape[0], m.weight.shape[1]] for _, m in layers]
    space = _IntWalkSpace(names, savings_arr, float_ms, shapes)
    walk = BudgetWalk(space, budget_ms, tolerance=0.02, what="latency_ms")
    all_int8 = space.cost(np.zeros(len(names)))
    agent = DDPGAgent(walk.state_dim, config.agent, seed=config.seed)
    cache: dict[tuple[int, ...], float] = {}
    records = []

    def score(values: np.ndarray) -> float:
        key = tuple(int(v) for v in values)
        if key not in cache:
            int8 = {n for n, v in zip(names, key) if v == 0}
            q = build(int8, config.search_calibration, work / "candidate")
            accuracy, loss = evaluate(q, held_batches)
            cache[key] = 1 - accuracy if config.metric == "accuracy" else loss
        return cache[key]

    for episode in track(range(config.episodes), "mixed int8 episodes"):
        warm = episode < config.warmup
        mode = "random" if warm else "noise"
        ep = walk.run(lambda s, lo, hi, m=mode: agent.act(s, lo, hi, m))
        reward = -score(ep.values)
        agent.observe_episode(ep.states, ep.actions, reward)
        if not warm:
            for _ in ep.states:
                agent.update()
        agent.end_episode(warm)
        records.append({"episode": episode, "reward": reward, "ms": ep.cost, "float": ep.values.tolist()})
    best = min(cache, key=cache.get)
    int8 = [n for n, v in zip(names, best) if v == 0]
    out.mkdir(parents=True, exist_ok=True)
    final = build(set(int8), config.calibration_batches, out)
    measured = _time(final.path, example_inputs, config.runs)
    shutil.rmtree(work, ignore_errors=True)
    predicted = space.cost(np.array(best))
    info(f"mixed int8: {len(int8)}/{len(names)} layers int8, {measured:.3f} ms measured (budget {budget_ms})")
    history = {"savings_ms": dict(zip(names, savings_arr.tolist())), "episodes": records}
    return MixedIntResult(final, int8, predicted, measured, float_ms, all_int8, float(budget_ms), history)


def _take(loader: Iterable[Any], n: int) -> list[Any]:
    out = []
    for batch in loader:
        out.append(batch)
        if len(out) >= n:
            break
    return out
