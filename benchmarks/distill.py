"""Does knowledge distillation recover a pruned model's accuracy better than plain fine-tuning?

Two cases, each printed as a table with the CPU calibration beside its timings:

1. LeNet-5 on the bundled MNIST digits, pruned to conv widths (2, 3): conv1 keeps its 2 and conv2 its 3
   best filters by L1 norm. Plain fine-tuning and KD fine-tuning run with the same recipe, epochs and
   seeds; the bar is KD > plain on the mean over seeds.
2. resnet20_cifar on the digits resized to 32x32 with 3 channels, pruned with the smallest uniform ratio
   that reaches MACs <= 0.5x of the unpruned model (measured with ``ns.measure``). The bar is KD
   accuracy within 0.5 percentage points of the unpruned model.

Trained baselines are cached under ``--cache`` when given, so reruns skip them. The default sizes keep
the whole run near 15 minutes on one thread of the 2-core dev machine.

    PYTHONPATH=src python benchmarks/distill.py [--seeds 3] [--cache DIR] [--part lenet|resnet|all]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch
from _calibration import print_calibration
from torch import nn

import netsculpt as ns
from netsculpt.allocate import select_keep
from netsculpt.data import make_loaders
from netsculpt.importance import get_criterion
from netsculpt.surgery import PrunePlan
from netsculpt.train import DistillConfig, TrainConfig, TrainResult, distill, evaluate, train

LENET_WIDTHS = {"conv1": 2, "conv2": 3}  # the LeNet case
RESNET_MACS_TARGET = 0.5  # "2x MACs reduction"
RESNET_GAP_BAR_PP = 0.5  # KD within 0.5 percentage points of the unpruned model
# Hinton et al.'s soft targets with the T=4, alpha=0.9 pairing common in the KD literature for small
# image classifiers (e.g. the CRD benchmark suite).
KD = DistillConfig(temperature=4.0, alpha=0.9)


def _cached_baseline(name: str, build, config: TrainConfig, loaders, cache: Path | None) -> nn.Module:
    """Train ``build()`` with ``config`` once; with a cache folder, reuse the saved model on reruns."""
    if cache is not None and ns.io.is_saved_model(cache / name):
        return ns.load(cache / name)
    torch.manual_seed(config.seed)
    model = build()
    start = time.perf_counter()
    result = train(model, *loaders, config)
    print(f"  trained {name} baseline: {result.final_acc:.2%} in {time.perf_counter() - start:.1f} s")
    if cache is not None:
        ns.save(model, cache / name)
    return model


def _finetune(
    pruned: nn.Module, teacher: nn.Module | None, config: TrainConfig, loaders
) -> tuple[float, float]:
    """Accuracy after fine-tuning a copy of ``pruned`` (with KD when a teacher is given), and seconds."""
    student = copy.deepcopy(pruned)
    start = time.perf_counter()
    if teacher is None:
        result: TrainResult = train(student, *loaders, config)
    else:
        result = distill(student, teacher, *loaders, config, KD)
    return result.final_acc, time.perf_counter() - start


def _row(label: str, accs: list[float], seconds: list[float]) -> str:
    spread = statistics.stdev(accs) * 100 if len(accs) > 1 else 0.0
    per_seed = " ".join(f"{a:.2%}" for a in accs)
    return (
        f"  {label:<22} {statistics.mean(accs):7.2%} ± {spread:4.2f} pp   [{per_seed}]   "
        f"{statistics.mean(seconds):6.1f} s/run"
    )


def lenet(args: argparse.Namespace) -> bool:
    print("== LeNet-5 on mnist5k, pruned to conv widths (2, 3), fine-tuned plain vs KD")
    print_calibration("lenet start")
    base_config = TrainConfig.preset("lenet5_mnist5k")
    loaders = make_loaders("mnist5k", batch_size=base_config.batch_size, augment=True, seed=base_config.seed)
    teacher = _cached_baseline(
        "lenet5", lambda: ns.create_model("lenet5", num_classes=10, in_channels=1), base_config, loaders,
        args.cache,
    )  # fmt: skip
    x = torch.randn(1, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    graph = ns.trace(teacher, x)
    scores = get_criterion("l1").score(teacher, graph, None)
    keep = {gid: select_keep(graph.group(gid), scores[gid], k) for gid, k in LENET_WIDTHS.items()}
    plan = PrunePlan(keep, {g.id: g.size for g in graph.groups}, {"criterion": "l1", "widths": LENET_WIDTHS})
    pruned = ns.apply_plan(teacher, plan, x, graph=graph)
    before, after = ns.measure(teacher, x, latency=False), ns.measure(pruned, x, latency=False)
    acc_teacher = evaluate(teacher, loaders[1])[0]
    acc_pruned = evaluate(pruned, loaders[1])[0]
    results: dict[str, tuple[list[float], list[float]]] = {
        "plain fine-tune": ([], []),
        "KD fine-tune": ([], []),
    }
    for seed in range(args.seeds):
        config = TrainConfig.preset("finetune", epochs=args.lenet_epochs, seed=seed)
        seed_loaders = make_loaders(
            "mnist5k", batch_size=config.batch_size, augment=config.augment, seed=seed
        )
        for label, kd_teacher in (("plain fine-tune", None), ("KD fine-tune", teacher)):
            acc, seconds = _finetune(pruned, kd_teacher, config, seed_loaders)
            results[label][0].append(acc)
            results[label][1].append(seconds)
    print(f"  unpruned: {acc_teacher:.2%}, {before.params:,} params, {before.macs:,} MACs")
    print(
        f"  pruned to conv1={LENET_WIDTHS['conv1']}, conv2={LENET_WIDTHS['conv2']}: {acc_pruned:.2%} before "
        f"fine-tuning, {after.params:,} params ({before.params / after.params:.1f}x fewer), "
        f"{after.macs:,} MACs ({before.macs / after.macs:.1f}x fewer)"
    )
    print(
        f"  recipe: preset finetune, {args.lenet_epochs} epochs, seeds 0..{args.seeds - 1}; KD {KD.to_dict()}"
    )
    print(f"  {'':<22} {'mean':>7}   {'std':>6}      per seed")
    for label, (accs, seconds) in results.items():
        print(_row(label, accs, seconds))
    gain = statistics.mean(results["KD fine-tune"][0]) - statistics.mean(results["plain fine-tune"][0])
    passed = gain > 0
    print(f"  KD - plain: {gain * 100:+.2f} pp  -> {'PASS' if passed else 'FAIL'} (bar: KD beats plain)")
    print_calibration("lenet end")
    return passed


def _uniform_ratio_for_macs(model: nn.Module, x: torch.Tensor, target: float) -> tuple[float, nn.Module]:
    """The smallest uniform ratio (on a 0.01 grid) whose pruned model has MACs <= target x the original."""
    base = ns.measure(model, x, latency=False).macs
    lo, hi = 0, 99  # in hundredths; bisection: MACs fall monotonically as the ratio grows
    while lo < hi:
        mid = (lo + hi) // 2
        if ns.measure(ns.prune(model, x, ratio=mid / 100), x, latency=False).macs <= target * base:
            hi = mid
        else:
            lo = mid + 1
    return lo / 100, ns.prune(model, x, ratio=lo / 100)


def resnet(args: argparse.Namespace) -> bool:
    print("== resnet20_cifar on mnist5k (32x32, 3 channels), uniform L1 pruning to <= 0.5x MACs, KD")
    print_calibration("resnet start")
    base_config = TrainConfig(
        epochs=args.resnet_base_epochs, batch_size=128, lr=0.1, warmup_epochs=1, augment=True
    )
    data = {"resize": 32, "channels": 3}
    loaders = make_loaders("mnist5k", batch_size=128, augment=True, seed=0, **data)
    teacher = _cached_baseline(
        "resnet20", lambda: ns.create_model("resnet20_cifar", num_classes=10, in_channels=3), base_config,
        loaders, args.cache,
    )  # fmt: skip
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    ratio, pruned = _uniform_ratio_for_macs(teacher, x, RESNET_MACS_TARGET)
    before, after = ns.measure(teacher, x, latency=False), ns.measure(pruned, x, latency=False)
    acc_teacher = evaluate(teacher, loaders[1])[0]
    acc_pruned = evaluate(pruned, loaders[1])[0]
    config = TrainConfig.preset("finetune", epochs=args.resnet_epochs, batch_size=128)
    ft_loaders = make_loaders("mnist5k", batch_size=config.batch_size, augment=config.augment, seed=0, **data)
    rows = [("unpruned", acc_teacher, None), ("pruned, no fine-tune", acc_pruned, None)]
    if not args.skip_plain:
        rows.append(("plain fine-tune", *_finetune(pruned, None, config, ft_loaders)))
    acc_kd, kd_seconds = _finetune(pruned, teacher, config, ft_loaders)
    rows.append(("KD fine-tune", acc_kd, kd_seconds))
    print(
        f"  uniform ratio {ratio:.2f}: MACs {before.macs:,} -> {after.macs:,} "
        f"({after.macs / before.macs:.3f}x), params {before.params:,} -> {after.params:,}"
    )
    print(f"  recipe: preset finetune, {args.resnet_epochs} epochs, batch 128, seed 0; KD {KD.to_dict()}")
    for label, acc, seconds in rows:
        timing = f"{seconds:6.1f} s" if seconds is not None else ""
        print(f"  {label:<22} {acc:7.2%}   {(acc - acc_teacher) * 100:+6.2f} pp   {timing}")
    gap = (acc_teacher - acc_kd) * 100
    passed = gap <= RESNET_GAP_BAR_PP
    print(
        f"  KD gap to unpruned: {gap:.2f} pp -> {'PASS' if passed else 'FAIL'} (bar {RESNET_GAP_BAR_PP} pp)"
    )
    print_calibration("resnet end")
    return passed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("lenet", "resnet", "all"), default="all")
    parser.add_argument("--seeds", type=int, default=3, help="LeNet fine-tuning seeds (0..N-1)")
    parser.add_argument("--lenet-epochs", type=int, default=10)
    parser.add_argument("--resnet-base-epochs", type=int, default=8)
    parser.add_argument("--resnet-epochs", type=int, default=8)
    parser.add_argument("--skip-plain", action="store_true", help="resnet: skip the plain fine-tune row")
    parser.add_argument("--cache", type=Path, default=None, help="keep / reuse trained baselines here")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    start = time.perf_counter()
    passed = []
    if args.part in ("lenet", "all"):
        passed.append(lenet(args))
    if args.part in ("resnet", "all"):
        passed.append(resnet(args))
    print(f"total wall time {time.perf_counter() - start:.1f} s")
    return 0 if all(passed) else 1


if __name__ == "__main__":
    sys.exit(main())
