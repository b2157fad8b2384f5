"""Choose the LeNet-5 90%-sparsity recipe on held-out training digits, never on the test digits.

``sparsity.py --parts lenet`` reports test accuracy, so its sparsification recipe must not be tuned by
looking at it. Here 500 of the 4,000 mnist5k training digits are held out; a float LeNet-5 is trained on
the other 3,500 (preset ``lenet5_mnist5k``), channel-pruned 30 % and fine-tuned exactly as in
``sparsity.py``, then each variant sparsifies a copy to 90 % and palettizes it (k-means 4-bit). The table
gives held-out accuracy after sparsity and after 4-bit, and the loss against the float model, per seed
(seed = the sparsify run's seed and the data order) and averaged. The test split is never loaded.

    PYTHONPATH=src:benchmarks python benchmarks/sparsity_lenet_val.py [--seeds 2] [--variants a,b]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from typing import Any

import torch
from _calibration import print_calibration

import netsculpt as ns
from netsculpt.search.holdout import holdout_loaders
from netsculpt.sparsity import SparsityConfig, sparsify
from netsculpt.train import DistillationLoss, DistillConfig, TrainConfig, evaluate, train
from netsculpt.weights import KMeansConfig, cluster_model

# name -> (SparsityConfig fields, epochs, distil from the pruned dense model)
VARIANTS: dict[str, tuple[dict[str, Any], int, bool]] = {
    "layer gradual 6 (old)": ({"schedule": "gradual", "ramp_phases": 3, "scope": "layer"}, 6, False),
    "global gradual 6": ({"schedule": "gradual", "ramp_phases": 3, "scope": "global"}, 6, False),
    "layer gradual 20": ({"schedule": "gradual", "ramp_phases": 5, "scope": "layer"}, 20, False),
    "global gradual 20": ({"schedule": "gradual", "ramp_phases": 5, "scope": "global"}, 20, False),
    "global gradual 20 + KD": ({"schedule": "gradual", "ramp_phases": 5, "scope": "global"}, 20, True),
    "global GaP 20": ({"method": "gap", "partitions": 4, "phase_epochs": 2, "scope": "global"}, 20, False),
    "global GaP 20 + KD": (
        {"method": "gap", "partitions": 4, "phase_epochs": 2, "scope": "global"},
        20,
        True,
    ),
}


def recipe(epochs: int, lr: float, seed: int = 0) -> TrainConfig:
    return TrainConfig(epochs=epochs, batch_size=64, lr=lr, warmup_epochs=0, augment=True, seed=seed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--variants", default=None, help=f"comma-separated subset of: {', '.join(VARIANTS)}")
    args = parser.parse_args(argv)
    names = args.variants.split(",") if args.variants else list(VARIANTS)
    torch.set_num_threads(1)
    print_calibration("start")
    tl, val, _ = holdout_loaders("mnist5k", val_size=500, batch_size=64, augment=True, shift=2)
    torch.manual_seed(0)
    base = ns.create_model("lenet5", num_classes=10, in_channels=1)
    train(base, tl, val, TrainConfig.preset("lenet5_mnist5k"))
    float_acc = evaluate(base, val)[0]
    pruned = ns.prune(base, next(iter(tl))[0][:1], ratio=0.3)
    train(pruned, tl, val, recipe(6, 0.01))
    print(f"held-out: float {float_acc:.2%}, channel prune 30% {evaluate(pruned, val)[0]:.2%}", flush=True)
    print(f"\n{'variant':<26} {'sparse':>7} {'4-bit':>7} {'loss pp':>8} {'s/run':>6}  per seed (4-bit)")
    for name in names:
        fields, epochs, kd = VARIANTS[name]
        start, sparse_accs, accs = time.perf_counter(), [], []
        for seed in range(args.seeds):
            model = copy.deepcopy(pruned)
            config = recipe(epochs, 0.01, seed)
            loss = DistillationLoss(copy.deepcopy(pruned), DistillConfig(temperature=4.0)) if kd else None
            sparsify(model, SparsityConfig(0.9, **fields), tl, val, config, loss_fn=loss)
            sparse_accs.append(evaluate(model, val)[0])
            accs.append(evaluate(cluster_model(model, KMeansConfig(bits=4), tl, val), val)[0])
        mean = statistics.fmean(accs)
        print(
            f"{name:<26} {statistics.fmean(sparse_accs):>7.2%} {mean:>7.2%} {(float_acc - mean) * 100:>8.2f} "
            f"{(time.perf_counter() - start) / args.seeds:>6.0f}  {' '.join(f'{a:.2%}' for a in accs)}",
            flush=True,
        )
    print_calibration("end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
