"""Shared plumbing for the criteria benchmarks: a cached baseline, scoring, fine-tuning, one table.

Every criterion gets the same calibration batches and the same fine-tune recipe (config and seed), so
the rows differ only in which channels were kept.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from netsculpt.train import DistillConfig, TrainConfig, distill, evaluate, train


@dataclass
class Row:
    name: str
    params: int
    macs: int
    acc_pruned: float
    tuned: list[float]  # final test accuracy of each fine-tune seed
    score_s: float
    tune_s: float

    @property
    def acc_tuned(self) -> float:
        """Mean over fine-tune seeds: at tiny widths one seed's result moves by a point."""
        return statistics.fmean(self.tuned)

    @property
    def spread(self) -> float:
        return statistics.stdev(self.tuned) if len(self.tuned) > 1 else 0.0


def cached_baseline(
    path: Path, build: Callable[[], nn.Module], fit: Callable[[nn.Module], None], seed: int = 0
) -> tuple[nn.Module, bool]:
    """The trained baseline from ``path`` (safetensors) if it is there, else build, fit and save it.

    The initial weights come from the global generator, so it is seeded first: unseeded, two runs of the
    same preset ended at 98.3 % and 98.8 %."""
    torch.manual_seed(seed)
    model = build()
    if path.exists():
        model.load_state_dict(load_file(str(path)))
        return model, True
    fit(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return model, False


def accuracy(model: nn.Module, loader: Any) -> float:
    return evaluate(model, loader)[0]


def fine_tuner(
    loaders: Callable[[int], tuple[Any, Any]],
    config: TrainConfig,
    teacher: nn.Module | None = None,
    kd: DistillConfig | None = None,
) -> Callable[[nn.Module, int], float]:
    """Fine-tune in place with ``config`` and the given seed (distilling from ``teacher`` if given); the
    returned function gives the final-epoch test accuracy (never the best epoch, which would select on
    the test set).

    ``loaders(seed)`` builds fresh loaders for every call: a loader's shuffling and augmentation
    generators advance as it is used, so reusing one would give each criterion different batches
    (measured: two identical plans ended 0.5 pp apart)."""

    def tune(model: nn.Module, seed: int) -> float:
        train_loader, test_loader = loaders(seed)
        seeded = config.replace(seed=seed)
        if teacher is None:
            return train(model, train_loader, test_loader, seeded).final_acc
        return distill(model, teacher, train_loader, test_loader, seeded, kd or DistillConfig()).final_acc

    return tune


def run_row(
    name: str,
    base: nn.Module,
    prune: Callable[[nn.Module], nn.Module],
    measure: Callable[[nn.Module], tuple[int, int]],
    test_loader: Any,
    tune: Callable[[nn.Module, int], float],
    seeds: int = 1,
) -> Row:
    """Prune a copy of ``base`` with ``prune`` (timed), evaluate, then fine-tune a copy of the pruned
    model once per seed with ``tune`` (timed: the mean time of one fine-tune)."""
    model = copy.deepcopy(base)
    start = time.perf_counter()
    small = prune(model)
    score_s = time.perf_counter() - start
    params, macs = measure(small)
    acc_pruned = accuracy(small, test_loader)
    start = time.perf_counter()
    tuned = [tune(copy.deepcopy(small), seed) for seed in range(seeds)]
    tune_s = (time.perf_counter() - start) / seeds
    return Row(name, params, macs, acc_pruned, tuned, score_s, tune_s)


def print_table(title: str, base_acc: float, base_params: int, base_macs: int, rows: list[Row]) -> None:
    print(f"\n== {title}")
    head = f"{'criterion':<26} {'params':>9} {'MACs':>11} {'pruned':>8} {'tuned':>8} {'loss pp':>8} "
    print(head + f"{'+/- pp':>7} {'score s':>8} {'tune s':>7}  per seed")
    print(f"{'(unpruned)':<26} {base_params:>9,} {base_macs:>11,} {base_acc:>8.2%} {'':>8} {'':>8}")
    for r in rows:
        loss = 100 * (base_acc - r.acc_tuned)
        seeds = " ".join(f"{a:.1%}" for a in r.tuned) if len(r.tuned) > 1 else ""
        print(
            f"{r.name:<26} {r.params:>9,} {r.macs:>11,} {r.acc_pruned:>8.2%} {r.acc_tuned:>8.2%} "
            f"{loss:>8.2f} {100 * r.spread:>7.2f} {r.score_s:>8.1f} {r.tune_s:>7.1f}  {seeds}",
            flush=True,
        )


def set_threads(n: int) -> None:
    if n > 0:
        torch.set_num_threads(n)
