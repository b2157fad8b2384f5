"""Which width criterion is the width-only baseline of ``benchmarks/depth.py``: chosen after the fine-tune.

Right after pruning resnet56_cifar to 0.5x MACs every criterion (l1, fpgm, taylor) is at chance on the
held-out images (10 %), so ``depth.py --part plan`` keeps the first (l1) on a tie. This part gives each
criterion the same KD fine-tune as the comparison (order seed 0) and ranks them by held-out accuracy
after it — training images held out of the split, never the test split (printed only).

    PYTHONPATH=src python benchmarks/depth_width_select.py --out DIR --cache DIR
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from _calibration import print_calibration
from _tables import table

import netsculpt as ns
from depth import KD, WIDTH_CRITERIA, _loaders, _write_json
from netsculpt.train import TrainConfig, distill, evaluate


def select(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Prune with every criterion (cached), fine-tune each once, return held-out/test accuracies."""
    teacher = ns.load(args.cache / "resnet56").eval()
    x = torch.randn(1, 3, 32, 32)
    rows: dict[str, dict[str, float]] = {}
    for crit in args.criteria.split(","):
        path = args.out / f"depth_v2_width_select_{crit}.json"
        if path.exists():
            rows[crit] = json.loads(path.read_text())
            continue
        train_l, held, test_l = _loaders(args, 32, augment=True, order_seed=args.seed)
        start = time.perf_counter()
        student = ns.prune(teacher, x, criterion=crit, target=ns.Target(macs=0.5), data=held)
        before = evaluate(student, held)[0]
        config = TrainConfig(epochs=args.ft_epochs, lr=0.02, seed=args.seed, augment=True, augment_shift=2)
        result = distill(student, teacher, train_l, test_l, config, KD, val_loader=held)
        last = result.history[-1]
        rows[crit] = {"held_before": before, "held_acc": last["val_acc"], "test_acc": last["test_acc"]}
        _write_json(path, rows[crit])
        print(f"{crit}: {rows[crit]} ({time.perf_counter() - start:.0f} s)", flush=True)
    return rows


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    p.add_argument("--cache", type=Path, default=Path("benchmarks/results/depth_cache/v2"))
    p.add_argument("--criteria", default=",".join(WIDTH_CRITERIA))
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--val-size", type=int, default=500)
    p.add_argument("--ft-epochs", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)
    print_calibration("width-select")
    rows = select(args)
    table(
        f"width criterion at 0.5x MACs, KD {args.ft_epochs} epoch(s), order seed {args.seed}",
        ("criterion", "held-out after pruning", "held-out after ft", "test (reported only)"),
        [
            (c, f"{r['held_before']:.2%}", f"{r['held_acc']:.2%}", f"{r['test_acc']:.2%}")
            for c, r in rows.items()
        ],
    )
    best = max(rows, key=lambda c: rows[c]["held_acc"])
    print(f"best width criterion on held-out images after the fine-tune: {best}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
