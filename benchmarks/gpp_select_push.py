"""Choose the push and gpp's ``shrink`` on held-out training digits (issue 22, section 2), never the test
split: LeNet-5 widths (2, 3), the ``criteria_oneshot.py`` bases; push (or cross-entropy) for 3 epochs and
fine-tune 3 epochs on the training split minus 1,000 digits, score those 1,000. Per base it prints the
unpruned held-out accuracy, the share of the gpp scores held by the 2 / 3 kept channels (the push's
target, measured on the held-out digits before any fine-tune), and gpp's accuracy right after pruning
(with and without the least-squares refit) and after the fine-tune.

    PYTHONPATH=src python benchmarks/gpp_select_push.py --bases 0,1,2,3,4 --shrink 1 --arm push \\
        --push-weight 0.1 --rest-weight 1
"""

from __future__ import annotations

import argparse
import copy
import itertools
import sys
from pathlib import Path

from _criteria_bench import set_threads
from criteria_oneshot import base_model

import gpp as bench
import netsculpt as ns
from netsculpt.search.holdout import holdout_loaders
from netsculpt.train import TrainConfig, evaluate, train


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bases", default="0,1,2,3,4")
    parser.add_argument("--shrink", type=float, default=1.0, help="gpp's shrink")
    parser.add_argument("--arm", choices=("ce", "push"), default="push")
    parser.add_argument("--push-weight", type=float, default=0.1)
    parser.add_argument("--rest-weight", type=float, default=1.0, help="0: the plain (all-channel) push")
    parser.add_argument("--cache", default="runs/bench/criteria_oneshot")
    args = parser.parse_args(argv)
    set_threads(1)
    s = bench.settings()["lenet_w23"]
    bench.CRITERION_OPTIONS["gpp"] = {"shrink": args.shrink}

    def loaders():
        train_loader, held, _ = holdout_loaders(
            "mnist5k", val_size=1000, batch_size=64, augment=True, **s.data
        )
        return train_loader, held

    held = loaders()[1]
    plain = holdout_loaders("mnist5k", val_size=1000, batch_size=64, augment=False, **s.data)[0]
    calib = list(itertools.islice(plain, 16))  # training digits, not the held-out ones
    x = calib[0][0][:1]
    push = {"push_weight": args.push_weight, "cov_weight": 0.1}
    if args.rest_weight > 0:
        push.update(keep="widths", rest_weight=args.rest_weight)
    for seed in (int(v) for v in args.bases.split(",")):
        base = base_model(s, seed, Path(args.cache))
        layers = bench.push_layers(base, ns.trace(base, x), s)
        model, stats = bench.trained_arm(base, args.arm, s, layers, 3, loaders, push)
        shares = bench.concentration(model, s, x, list(held))
        label = push if args.arm == "push" else ""
        print(f"base {seed} {args.arm} {label} held-out {evaluate(model, held)[0]:.3f} "
              f"shares {shares} push terms {stats}", flush=True)  # fmt: skip
        for refit in (False, True):
            small = bench.prune(copy.deepcopy(model), "gpp", s, x, calib, refit=refit).eval()
            pruned = evaluate(small, held)[0]
            train(small, loaders()[0], held, TrainConfig.preset("finetune", epochs=3, seed=0))
            print(f"base {seed} {args.arm}/gpp shrink {args.shrink} refit {refit}: right after {pruned:.3f} "
                  f"fine-tuned {evaluate(small, held)[0]:.3f}", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
