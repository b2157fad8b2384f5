"""Train LeNet-5 on the bundled MNIST digits with the ``lenet5_mnist5k`` preset and check the bar.

The bar: at least 97% top-1 on the 1,000 held-out digits, in about two minutes of wall time on an idle
2-core machine. The CPU calibration figure is printed beside the wall time so a slow run on a busy machine
can be told apart from a slow recipe. Exits 1 when accuracy is below the bar.

Training runs on one thread by default: the calibration figure is a one-thread figure, so the two compare,
and on a shared machine two OpenMP threads competing with other processes for two cores ran 4-7x slower
than one thread (measured while writing this benchmark). ``--threads 0`` leaves torch's default.

    PYTHONPATH=src python benchmarks/train_lenet5.py [--preset NAME] [--epochs N] [--threads N]
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from netsculpt.data import make_loaders
from netsculpt.measure import cpu_calibration
from netsculpt.models import create_model
from netsculpt.train import TrainConfig, train

ACCURACY_BAR = 0.97  # the brief's bar for lenet5 on mnist5k
TIME_BUDGET_S = 120.0  # "about two minutes" on an idle 2-core machine: reported, not enforced


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="lenet5_mnist5k")
    parser.add_argument("--epochs", type=int, default=None, help="override the preset's epochs")
    parser.add_argument("--seed", type=int, default=None, help="override the preset's seed")
    parser.add_argument("--out-dir", default=None, help="keep checkpoints and final weights here")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1, like the calibration's matmul; 0 = torch's choice, one per core)",
    )
    args = parser.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    overrides = {k: v for k, v in (("epochs", args.epochs), ("seed", args.seed)) if v is not None}
    config = TrainConfig.preset(args.preset, **overrides)
    calibration = cpu_calibration()

    start = time.perf_counter()
    train_loader, test_loader = make_loaders(
        "mnist5k", batch_size=config.batch_size, augment=config.augment, seed=config.seed
    )
    torch.manual_seed(config.seed)  # the model's initial weights come from the global generator
    model = create_model("lenet5", num_classes=10, in_channels=1)
    load_s = time.perf_counter() - start
    result = train(model, train_loader, test_loader, config, out_dir=args.out_dir)
    total_s = time.perf_counter() - start
    train_s = total_s - load_s

    rows = [
        ("preset", args.preset),
        ("config", ", ".join(f"{k}={v}" for k, v in config.to_dict().items() if k != "version")),
        ("train / test digits", f"{len(train_loader.dataset)} / {len(test_loader.dataset)}"),
        ("torch threads", str(torch.get_num_threads())),
        ("epochs run", str(result.epochs_run)),
        ("test accuracy per epoch", " ".join(f"{h['test_acc']:.1%}" for h in result.history)),
        ("test accuracy (final)", f"{result.final_acc:.2%}  (bar {ACCURACY_BAR:.0%})"),
        ("test accuracy (best epoch)", f"{result.best_acc:.2%}"),
        ("wall time: train", f"{train_s:.1f} s  (budget ~{TIME_BUDGET_S:.0f} s idle)"),
        ("wall time: data + model", f"{load_s:.1f} s"),
        ("calibration", str(calibration)),
    ]
    width = max(len(name) for name, _ in rows)
    print("== lenet5 on mnist5k")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    passed = result.final_acc >= ACCURACY_BAR
    print("PASS" if passed else f"FAIL: final accuracy {result.final_acc:.2%} is below {ACCURACY_BAR:.0%}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
