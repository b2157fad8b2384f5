"""Every criterion on resnet20_cifar / mnist5k (32x32, 3 channels) at half the MACs, side by side with
Torch-Pruning 1.6.1's importances, in one run.

All rows prune the same trained baseline to <= 0.5x MACs with a *uniform* allocation (every group loses
the same fraction: netsculpt ``Target(macs=0.5), strategy="uniform"``; Torch-Pruning ``MetaPruner`` with
``global_pruning=False`` at the largest ratio whose MACs are <= 0.5x), so rows differ only in which
channels each criterion keeps. Data-driven criteria see the same calibration batches; every pruned model
gets the same short fine-tune. Torch-Pruning rows: ``MagnitudeImportance(p=1)``, ``TaylorImportance()``
(gradients of the same calibration batches) and ``GroupMagnitudeImportance(p=2)`` (1.6's name for the
former ``GroupNormImportance``). torch_pruning is a benchmark-only extra (requirements/bench.txt).

    PYTHONPATH=src python benchmarks/criteria_resnet.py [--epochs 5] [--tune-epochs 1] [--threads 1]
"""

from __future__ import annotations

import argparse
import copy
import itertools
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from _calibration import print_calibration
from _criteria_bench import Row, cached_baseline, fine_tuner, print_table, run_row, set_threads

import netsculpt as ns
from netsculpt.data import make_loaders
from netsculpt.measure import count_macs, count_params
from netsculpt.train import TrainConfig, evaluate, train


def tp_rows(
    base, x, calib, calib_batches, goal_macs, measure, test_loader, tuner, show, seeds=1
) -> list[Row]:
    import torch_pruning as tp

    def pruned(importance, ratio: float, grads: bool = False):
        def run(model):
            if grads:
                model.zero_grad()
                for i, (inputs, labels) in enumerate(calib):
                    if i >= calib_batches:
                        break
                    F.cross_entropy(model(inputs), labels).backward()
            pruner = tp.pruner.MetaPruner(
                model, x, importance=importance, pruning_ratio=ratio, ignored_layers=[model.fc]
            )
            pruner.step()
            model.zero_grad(set_to_none=True)
            return model

        return run

    lo, hi = 0.0, 0.95  # uniform ratio: the largest with MACs <= goal (MACs fall as the ratio grows)
    for _ in range(12):
        mid = (lo + hi) / 2
        m = pruned(tp.importance.MagnitudeImportance(p=1), mid)(copy.deepcopy(base).eval())
        lo, hi = (lo, mid) if measure(m)[1] <= goal_macs else (mid, hi)
    ratio = hi
    print(f"Torch-Pruning uniform pruning_ratio {ratio:.4f}")
    specs = [
        ("tp MagnitudeImportance p=1", tp.importance.MagnitudeImportance(p=1), False),
        ("tp TaylorImportance", tp.importance.TaylorImportance(), True),
        ("tp GroupMagnitude p=2", tp.importance.GroupMagnitudeImportance(p=2), False),
    ]
    rows = []
    for name, imp, grads in specs:
        rows.append(run_row(name, base, pruned(imp, ratio, grads), measure, test_loader, tuner, seeds))
        show(rows[-1:])
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5, help="baseline training epochs (cached)")
    parser.add_argument("--tune-epochs", type=int, default=1, help="fine-tune epochs, same for every row")
    parser.add_argument("--calib-batches", type=int, default=8, help="calibration batches of 64 images")
    parser.add_argument("--criteria", default=None, help="comma-separated subset (default: all)")
    parser.add_argument("--no-tp", action="store_true", help="skip the Torch-Pruning rows")
    parser.add_argument("--cache", default="runs/bench/criteria_resnet", help="baseline cache folder")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--seeds", type=int, default=1, help="fine-tune seeds per row (the table shows the mean)"
    )
    args = parser.parse_args(argv)
    set_threads(args.threads)
    print_calibration("start")

    warmup = 1 if args.epochs > 1 else 0
    fit_cfg = TrainConfig.preset("default", epochs=args.epochs, batch_size=64, lr=0.05, warmup_epochs=warmup)
    tune = TrainConfig.preset("default", epochs=args.tune_epochs, batch_size=64, lr=0.01, warmup_epochs=0)
    opts = {"resize": 32, "channels": 3}

    def loaders(seed=0):
        return make_loaders("mnist5k", batch_size=64, seed=seed, **opts)

    train_loader, test_loader = loaders()
    calib_loader, _ = make_loaders("mnist5k", batch_size=64, seed=1, **opts)
    # a list, not the loader: a loader's shuffle generator advances, so every row would see other data
    calib = list(itertools.islice(calib_loader, args.calib_batches))
    x = next(iter(test_loader))[0][:1]

    def fit(model):
        train(model, train_loader, test_loader, fit_cfg)

    def build():
        torch.manual_seed(0)
        return ns.create_model("resnet20_cifar", num_classes=10, in_channels=3)

    base, cached = cached_baseline(Path(args.cache) / f"baseline_e{args.epochs}.safetensors", build, fit)
    base.eval()
    base_acc = evaluate(base, test_loader)[0]
    base_macs, base_params = count_macs(base, x)[0], count_params(base)
    print(f"baseline ({args.epochs} epochs) {'loaded from' if cached else 'trained, saved to'} {args.cache}: "
          f"{base_acc:.2%}; fine-tune: {args.tune_epochs} epoch(s), lr 0.01 cosine, batch 64")  # fmt: skip

    tuner = fine_tuner(loaders, tune)

    def measure(m):
        return count_params(m), count_macs(m, x)[0]

    rows: list[Row] = []
    names = args.criteria.split(",") if args.criteria else ns.list_criteria()
    for name in names:

        def prune(model, name=name):
            return ns.prune(
                model, x, criterion=name, target=ns.Target(macs=0.5), strategy="uniform",
                data=calib, calib_batches=args.calib_batches,
            )  # fmt: skip

        rows.append(run_row(name, base, prune, measure, test_loader, tuner, args.seeds))
        print_table("resnet20_cifar", base_acc, base_params, base_macs, rows[-1:])
    if not args.no_tp:
        rows += tp_rows(
            base, x, calib, args.calib_batches, 0.5 * base_macs, measure, test_loader, tuner,
            lambda new: print_table("resnet20_cifar", base_acc, base_params, base_macs, new), args.seeds,
        )  # fmt: skip
    print_table(
        "resnet20_cifar on mnist5k (32x32x3), <= 0.5x MACs, uniform allocation", base_acc, base_params,
        base_macs, rows,
    )  # fmt: skip
    print_calibration("end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
