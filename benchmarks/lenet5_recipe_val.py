"""Choose the LeNet-5 (2, 3) fine-tune recipe on held-out training digits, never on the test digits.

``criteria_lenet5.py`` reports test accuracy, so its recipe must not be tuned by looking at it. Here 500
of the 4,000 mnist5k training digits are held out, baselines of ``--teachers`` seeds are trained on the
other 3,500 (preset ``lenet5_mnist5k``), each is pruned with ``--criterion`` to conv widths (2, 3) and
fine-tuned by distillation from itself with each recipe variant below, once per seed; the table gives the
held-out accuracy and the loss against the teacher, averaged over teachers and seeds (one teacher is one
draw: from different teachers the same recipe moved by 0.7 pp). The test split is never loaded. A variant
is the reference recipe with the listed fields changed.

    PYTHONPATH=src python benchmarks/lenet5_recipe_val.py [--teachers 3] [--seeds 3] [--variants "T 4"]
"""

from __future__ import annotations

import argparse
import copy
import itertools
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from _calibration import print_calibration
from _criteria_bench import cached_baseline, set_threads
from torch.utils.data import DataLoader

import netsculpt as ns
from netsculpt.allocate import widths_plan
from netsculpt.data import load_dataset, training_loader
from netsculpt.importance import get_criterion
from netsculpt.search.holdout import split_holdout
from netsculpt.train import DistillConfig, TrainConfig, distill, evaluate, train

WIDTHS = {"conv1": 2, "conv2": 3}
REFERENCE: dict[str, Any] = {
    "epochs": 40, "lr": 0.05, "batch_size": 64, "shift": 1, "clip": 1.0, "T": 2.0, "alpha": 0.9, "wd": 0.0,
    "mixup": 0.0,
}  # fmt: skip
# each variant changes the reference in one or two places; the grid that chose criteria_lenet5's recipe
VARIANTS: dict[str, dict[str, Any]] = {
    "reference": {},
    "batch 32": {"batch_size": 32},
    "80 epochs": {"epochs": 80},
    "alpha 1": {"alpha": 1.0},
    "lr 0.03": {"lr": 0.03},
    "lr 0.1": {"lr": 0.1},
    "shift 2": {"shift": 2},
    "wd 1e-4": {"wd": 1e-4},
    "no clip": {"clip": 0.0},
    "T 4": {"T": 4.0},
    "T 6": {"T": 6.0},
    "T 8": {"T": 8.0},
    "T 4 + 80 epochs": {"T": 4.0, "epochs": 80},
    "T 4 + batch 32": {"T": 4.0, "batch_size": 32},
    "T 4 + shift 2": {"T": 4.0, "shift": 2},
    "T 4 + 100 epochs": {"T": 4.0, "epochs": 100},
    "T 4 + mixup 1": {"T": 4.0, "mixup": 1.0},
    "T 4 + mixup 0.2": {"T": 4.0, "mixup": 0.2},
    "T 4 + mixup 1 + 100 epochs": {"T": 4.0, "mixup": 1.0, "epochs": 100},
    "T 4 + mixup 1 + 100 ep + alpha 1": {"T": 4.0, "mixup": 1.0, "epochs": 100, "alpha": 1.0},
    "T 4 + mixup 1 + 200 epochs": {"T": 4.0, "mixup": 1.0, "epochs": 200},
}


def shifted_loader(dataset: Any, seed: int, shift: int | None, batch_size: int) -> DataLoader:
    """Shuffled batches with random shifts of at most ``shift`` pixels (None: the dataset's default)."""
    return training_loader(dataset, batch_size=batch_size, seed=seed, augment=shift != 0, shift=shift)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="fine-tune seeds per variant and teacher")
    parser.add_argument(
        "--teachers", type=int, default=3, help="baselines (seeds 0..N-1) to prune and distil"
    )
    parser.add_argument("--variants", default=None, help=f"comma-separated subset of: {', '.join(VARIANTS)}")
    parser.add_argument("--criterion", default="hrel")
    parser.add_argument("--held-out", type=int, default=500, help="training digits held out for selection")
    parser.add_argument("--cache", default="runs/bench/lenet5_recipe_val", help="baseline cache folder")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    names = args.variants.split(",") if args.variants else list(VARIANTS)
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; choose from {list(VARIANTS)}")
    set_threads(args.threads)
    print_calibration("start")

    train_split, _ = load_dataset("mnist5k", seed=0)
    rest, held = split_holdout(train_split, args.held_out, 0)
    val_loader = DataLoader(held, batch_size=256)
    preset = TrainConfig.preset("lenet5_mnist5k")

    calib_loader = DataLoader(rest, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(1))
    calib = list(itertools.islice(calib_loader, 16))
    x = calib[0][0][:1]
    pairs = []  # (teacher, its pruned copy, its held-out accuracy)
    for seed in range(args.teachers):

        def fit(model: torch.nn.Module, seed: int = seed) -> None:
            loader = shifted_loader(rest, seed, None, preset.batch_size)
            train(model, loader, val_loader, preset.replace(seed=seed))

        path = Path(args.cache) / f"baseline_seed{seed}.safetensors"
        base = cached_baseline(path, lambda: ns.create_model("lenet5"), fit, seed)[0].eval()
        graph = ns.trace(base, x)
        scores = get_criterion(args.criterion).score(base, graph, calib)
        small = ns.apply_plan(copy.deepcopy(base), widths_plan(graph, scores, WIDTHS), x, graph=graph)
        pairs.append((base, small, evaluate(base, val_loader)[0]))
    accs = " ".join(f"{acc:.2%}" for _, _, acc in pairs)
    print(f"baselines on {len(rest)} digits, on {len(held)} held out: {accs}; {args.criterion}: {WIDTHS}")
    print(f"\n{'variant':<30} {'held-out':>9} {'loss pp':>8} {'s/run':>6}  per teacher", flush=True)
    for name in names:
        recipe = {**REFERENCE, **VARIANTS[name]}
        config = preset.replace(
            epochs=recipe["epochs"], lr=recipe["lr"], batch_size=recipe["batch_size"], warmup_epochs=0,
            weight_decay=recipe["wd"], label_smoothing=0.0, grad_clip=recipe["clip"] or None,
        )  # fmt: skip
        kd = DistillConfig(temperature=recipe["T"], alpha=recipe["alpha"], mixup=recipe["mixup"])
        start = time.perf_counter()
        means, losses = [], []
        for base, small, base_acc in pairs:
            accs = []
            for seed in range(args.seeds):
                loader = shifted_loader(rest, seed, recipe["shift"], config.batch_size)
                result = distill(
                    copy.deepcopy(small), base, loader, val_loader, config.replace(seed=seed), kd
                )
                accs.append(result.final_acc)
            means.append(statistics.fmean(accs))
            losses.append(100 * (base_acc - means[-1]))
        runs = len(pairs) * args.seeds
        print(
            f"{name:<30} {statistics.fmean(means):>9.2%} {statistics.fmean(losses):>8.2f} "
            f"{(time.perf_counter() - start) / runs:>6.0f}  {' '.join(f'{m:.2%}' for m in means)}",
            flush=True,
        )
    print_calibration("end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
