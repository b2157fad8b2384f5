"""Training throughput: ``netsculpt.train`` and ``distill`` against a bare PyTorch loop, side by side.

Both sides get the same model (a copy of one seeded initialisation), the same batches (one list of
tensors drawn once from the mnist5k training split, batch 64, so data loading costs neither side
anything), the same optimizer (SGD + Nesterov, weight decay, a per-batch cosine schedule) and, for
distillation, the same teacher and loss (T = 4, alpha = 0.9). The bare loop also scores the same test
batches after every epoch, as ``train`` does. Runs alternate (bare, netsculpt, bare, ...) so that a busy
machine slows both alike; the table gives the median seconds per epoch and the ratio. Bar (issue 15):
netsculpt <= 1.3x the bare loop's time per epoch.

    PYTHONPATH=src python benchmarks/train_speed.py [--models lenet5,resnet20_cifar] [--repeats 3]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from _calibration import print_calibration
from _criteria_bench import set_threads

import netsculpt as ns
from netsculpt.data import make_loaders
from netsculpt.progress import set_quiet
from netsculpt.train import DistillConfig, TrainConfig, distill, train
from netsculpt.train.distill import kd_loss

BAR = 1.3


def bare_epochs(model, teacher, batches, test, config: TrainConfig, epochs: int) -> list[float]:
    """The loop a user would write by hand: wall seconds per epoch (train pass + test pass)."""
    opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                          nesterov=config.nesterov, weight_decay=config.weight_decay)  # fmt: skip
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * len(batches))
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        for x, y in batches:
            opt.zero_grad(set_to_none=True)
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            if teacher is not None:
                with torch.no_grad():
                    t = teacher(x)
                loss = 0.1 * loss + 0.9 * kd_loss(logits, t, 4.0)
            loss.backward()
            opt.step()
            sched.step()
        model.eval()
        with torch.no_grad():
            for x, y in test:
                model(x).argmax(1).eq(y).sum()
    return [(time.perf_counter() - start) / epochs] * epochs


def netsculpt_epochs(model, teacher, batches, test, config: TrainConfig) -> list[float]:
    """Wall time of the whole call per epoch (its per-epoch snapshot and set-up included)."""
    start = time.perf_counter()
    if teacher is None:
        train(model, batches, test, config)
    else:
        distill(model, teacher, batches, test, config, DistillConfig(temperature=4.0, alpha=0.9))
    return [(time.perf_counter() - start) / config.epochs] * config.epochs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="lenet5,resnet20_cifar")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per timed run")
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs per side")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    set_threads(args.threads)
    set_quiet(True)  # no bars on either side: a terminal bar's drawing is not the loop's cost
    print_calibration("start")
    rows = []
    for name in args.models.split(","):
        opts = {"resize": 32, "channels": 3} if name.startswith("resnet") else {}
        train_loader, test_loader = make_loaders("mnist5k", batch_size=64, augment=False, seed=0, **opts)
        batches, test = list(train_loader), list(test_loader)
        torch.manual_seed(0)
        kwargs = {"num_classes": 10, "in_channels": 3} if opts else {}
        init = ns.create_model(name, **kwargs)
        teacher = copy.deepcopy(init).eval()
        config = TrainConfig.preset(
            "default", epochs=args.epochs, batch_size=64, lr=0.01, momentum=0.9, nesterov=True,
            weight_decay=5e-4, warmup_epochs=0, label_smoothing=0.0, augment=False,
        )  # fmt: skip
        for kind, t in (("train", None), ("distill", teacher)):
            bare, ours = [], []
            for _ in range(args.repeats):
                bare += bare_epochs(copy.deepcopy(init), t, batches, test, config, args.epochs)
                ours += netsculpt_epochs(copy.deepcopy(init), t, batches, test, config)
            b, o = statistics.median(bare), statistics.median(ours)
            rows.append((name, kind, b, o))
            print(f"{name:<16} {kind:<8} bare {b:.2f} s/epoch  netsculpt {o:.2f} s/epoch  ratio {o / b:.2f}",
                  flush=True)  # fmt: skip
    print_calibration("end")
    print(f"\n{'model':<16} {'loop':<8} {'bare s/ep':>10} {'netsculpt s/ep':>15} {'ratio':>6}")
    worst = 0.0
    for name, kind, b, o in rows:
        worst = max(worst, o / b)
        print(f"{name:<16} {kind:<8} {b:>10.2f} {o:>15.2f} {o / b:>6.2f}")
    print(f"{'PASS' if worst <= BAR else 'FAIL'}: worst ratio {worst:.2f} (bar {BAR})")
    return 0 if worst <= BAR else 1


if __name__ == "__main__":
    sys.exit(main())
