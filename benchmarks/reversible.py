"""Reversible networks: training memory and time vs ordinary backprop and activation checkpointing, and
the accuracy of a small RevNet against its ResNet twin on the bundled digits.

Parts (each well under 40 min on one thread of the shared 2-core dev machine; calibration printed
beside every timing table; results to benchmarks/results/reversible_<part>.json, resumable per row):

- ``memory``: a stack of N reversible blocks (F, G = conv-BN-ReLU-conv-BN on 8 of 16 channels, 16x16
  maps, batch 4) trained three ways on the same weights and batch: *ordinary* (the blocks in an
  ``nn.Sequential``, plain autograd), *checkpoint* (that Sequential under ``activation_checkpointing``,
  one checkpoint per block) and *reversible* (a ``ReversibleSequence``). Memory is measured the way
  ``measure`` measures inference: every storage an aten op creates is tracked until it is freed
  (``measure/memory.py``), giving the bytes the graph holds after the forward and the peak over forward
  + backward (parameters, their gradients' first allocation and the input excluded or constant across
  the three). Time is the median fwd+bwd step, the three interleaved so a busy machine slows all alike.
- ``accuracy``: revnet26_cifar (widths 32/64/128: every 3x3 conv has the shape of one in ResNet-26 at
  16/32/64) and ResNet-26, both with a 1-channel stem for the 28x28 digits, trained with the same fixed
  recipe (not tuned on anything) on ``--limit`` mnist5k training images minus a 400-image held-out split
  (a cut-down budget: the shared machine gave this run a fraction of a core); the held-out and the
  test accuracy of the *last* epoch are reported (nothing is selected on either).

    PYTHONPATH=src python benchmarks/reversible.py --part memory [--depths 50,100,200]
    PYTHONPATH=src python benchmarks/reversible.py --part accuracy [--seeds 0] [--epochs 4] [--limit 2400]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from _calibration import print_calibration
from _criteria_bench import set_threads
from _tables import FAILURES, bar, table
from torch import nn

from netsculpt.fileio import write_json
from netsculpt.measure.memory import _LiveStorageTracker
from netsculpt.models import ResNetCifar, ReversibleBlock, ReversibleSequence, RevNetCifar
from netsculpt.models.revnet_cifar import residual_fn
from netsculpt.progress import set_quiet
from netsculpt.search.holdout import holdout_loaders
from netsculpt.train import TrainConfig, evaluate, train
from netsculpt.train.act_checkpoint import activation_checkpointing

RESULTS = Path(__file__).parent / "results"
MiB = 2**20
VARIANTS = ("ordinary", "checkpoint", "reversible")


def _blocks(depth: int, half: int = 8) -> list[ReversibleBlock]:
    torch.manual_seed(0)
    return [ReversibleBlock(residual_fn(half, half), residual_fn(half, half)) for _ in range(depth)]


def _step(model: nn.Module, x: torch.Tensor, checkpointed: bool) -> tuple[int, int]:
    """One forward + backward; returns (bytes held after the forward, peak bytes)."""
    tracker = _LiveStorageTracker()
    try:
        with activation_checkpointing(model, checkpointed), tracker:
            y = model(x)
            held = tracker.current
            y.square().mean().backward()
            del y
    finally:
        tracker.close()
    model.zero_grad(set_to_none=True)
    return held, tracker.peak


def _time(model: nn.Module, x: torch.Tensor, checkpointed: bool) -> float:
    with activation_checkpointing(model, checkpointed):
        start = time.perf_counter()
        model(x).square().mean().backward()
        seconds = time.perf_counter() - start
    model.zero_grad(set_to_none=True)
    return seconds


def part_memory(args: argparse.Namespace) -> None:
    out = RESULTS / "reversible_memory.json"
    results = json.loads(out.read_text()) if out.exists() else {}
    before = print_calibration("before")
    for depth in args.depths:
        if str(depth) in results and not args.force:
            continue
        calibration = str(print_calibration(f"{depth} blocks"))
        blocks = _blocks(depth)
        models = {
            "ordinary": nn.Sequential(*blocks).train(),
            "checkpoint": nn.Sequential(*blocks).train(),
            "reversible": ReversibleSequence(blocks).train(),
        }
        x = torch.randn(4, 16, 16, 16, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
        row: dict[str, dict[str, float]] = {}
        for name, model in models.items():
            held, peak = _step(model, x, name == "checkpoint")
            row[name] = {"held_mib": held / MiB, "peak_mib": peak / MiB}
        times: dict[str, list[float]] = {name: [] for name in models}
        for name, model in models.items():  # warm-up
            _time(model, x, name == "checkpoint")
        for _ in range(args.repeats):
            for name, model in models.items():
                times[name].append(_time(model, x, name == "checkpoint"))
        for name in models:
            row[name]["step_ms"] = 1000 * statistics.median(times[name])
        row["calibration"] = {"before": calibration, "after": str(print_calibration(f"{depth} blocks"))}
        row["grads_mib"] = sum(p.numel() * 4 for b in blocks for p in b.parameters()) / MiB
        results[str(depth)] = row
        write_json(out, results)
        print(f"depth {depth} done", flush=True)
    after = print_calibration("after")
    rows = []
    for depth in sorted(results, key=int):
        r = results[depth]
        base = r["ordinary"]
        grads = r["grads_mib"]
        rows.append(
            (
                depth,
                f"{grads:.2f}",
                *(f"{r[v]['held_mib']:.2f}" for v in VARIANTS),
                *(f"{r[v]['peak_mib']:.2f}" for v in VARIANTS),
                f"{r['reversible']['peak_mib'] - grads:.2f}",
                *(f"{r[v]['step_ms']:.0f}" for v in VARIANTS),
                f"{r['checkpoint']['step_ms'] / base['step_ms']:.2f}x",
                f"{r['reversible']['step_ms'] / base['step_ms']:.2f}x",
            )
        )
    header = ("blocks", "grads", "held ord", "held ckpt", "held rev", "peak ord", "peak ckpt", "peak rev",
              "rev-grads", "ms ord", "ms ckpt", "ms rev", "ckpt/ord", "rev/ord")  # fmt: skip
    title = "training memory (MiB; peak includes the parameter gradients) and fwd+bwd time, same weights"
    table(title, header, rows)
    for depth in sorted(results, key=int):
        cal = results[depth]["calibration"]
        print(f"{depth} blocks measured between [{cal['before']}] and [{cal['after']}]")
    print(f"(this printout: before {before}; after {after})")
    depths = sorted(results, key=int)
    if len(depths) >= 2:
        held = [results[d]["reversible"]["held_mib"] for d in depths]
        text = f"reversible: memory held after the forward constant in depth ({held} MiB)"
        print(bar(max(held) - min(held) < 0.01, text))
        lean = [results[d]["reversible"]["peak_mib"] - results[d]["grads_mib"] for d in depths]
        text = f"reversible: peak minus parameter gradients constant in depth ({[round(v, 2) for v in lean]})"
        print(bar(max(lean) - min(lean) < 0.05, text))
        deepest = results[depths[-1]]
        print(
            bar(
                deepest["reversible"]["peak_mib"] < 0.25 * deepest["ordinary"]["peak_mib"],
                f"{depths[-1]} blocks: reversible peak < 0.25x ordinary",
            )
        )


def _accuracy_loaders(args: argparse.Namespace, seed: int):
    return holdout_loaders("mnist5k", val_size=400, batch_size=64, seed=seed, augment=True, limit=args.limit)


def part_accuracy(args: argparse.Namespace) -> None:
    out = RESULTS / "reversible_accuracy.json"
    results = json.loads(out.read_text()) if out.exists() else {}
    config = TrainConfig(epochs=args.epochs, batch_size=64, lr=0.05, warmup_epochs=1, augment=True)
    builders = {
        "revnet26_cifar": lambda: RevNetCifar(26, in_channels=1),
        "resnet26 (ResNetCifar(26))": lambda: ResNetCifar(26, in_channels=1),
    }
    print_calibration("before")
    for seed in args.seeds:
        for name, build in builders.items():
            key = f"{name}/{args.limit - 400}img/{args.epochs}ep/seed{seed}"
            if key in results and not args.force:
                continue
            train_l, val_l, test_l = _accuracy_loaders(args, seed)
            torch.manual_seed(seed)
            model = build()
            start = time.perf_counter()
            result = train(
                model,
                train_l,
                test_l,
                config.replace(seed=seed),
                on_epoch_end=lambda r, key=key: print(
                    f"  {key} epoch {r['epoch']}: {r['seconds']:.0f} s", flush=True
                ),
            )
            seconds = time.perf_counter() - start
            val_acc, _ = evaluate(model, val_l)
            results[key] = {
                "params": sum(p.numel() for p in model.parameters()),
                "val_acc": val_acc,
                "test_acc": result.final_acc,
                "seconds": seconds,
                "epochs": args.epochs,
                "train_images": len(train_l.dataset),
            }
            write_json(out, results)
            print(f"{key}: held-out {val_acc:.2%}, test {result.final_acc:.2%}, {seconds:.0f} s", flush=True)
    print_calibration("after")
    rows = [
        (k, f"{r['params']:,}", f"{r['val_acc']:.2%}", f"{r['test_acc']:.2%}", f"{r['seconds']:.0f}")
        for k, r in sorted(results.items())
    ]
    title = "mnist5k 28x28, model/training images/epochs/seed, same recipe, last epoch"
    table(title, ("model", "params", "held-out", "test", "s"), rows)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=("memory", "accuracy"), required=True)
    p.add_argument("--depths", type=lambda s: [int(v) for v in s.split(",")], default=[50, 100, 200])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--seeds", type=lambda s: [int(v) for v in s.split(",")], default=[0])
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--limit", type=int, default=2400, help="training images used (400 of them held out)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--force", action="store_true", help="recompute rows already in the results file")
    args = p.parse_args()
    set_threads(args.threads)
    set_quiet(True)
    {"memory": part_memory, "accuracy": part_accuracy}[args.part](args)
    if FAILURES:
        print("missed bars:", *FAILURES, sep="\n  ")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    raise SystemExit(main())
