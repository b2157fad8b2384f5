"""AdderNet on the bundled MNIST digits: CNN vs ANN vs ANN + PKKD on LeNet-5, op counts and energy,
and the speed of AdderConv2d against nn.Conv2d on the same shapes.

Parts (each fits in ~15 minutes on one thread; each writes benchmarks/results/adder_<part>.json):

- ``speed``: forward + backward time of AdderConv2d vs nn.Conv2d on LeNet-5's conv2 and a resnet20 conv,
  measured side by side, with the CPU calibration printed beside them.
- ``cnn`` / ``ann`` / ``pkkd``: LeNet-5 trained from scratch with the same recipe, epochs and seed: the
  CNN, its adder version (``to_adder(keep=["first", "last"])``) from labels, and the adder version with
  PKKD (a fresh CNN teacher trained alongside). The final-epoch test accuracy is reported (no epoch is
  picked on the test split). ``table`` prints the bar: ANN + PKKD >= ANN + 0.3 pp and within 1 pp of CNN.

    PYTHONPATH=src:. nice -n 10 python benchmarks/adder_lenet5.py --part speed|cnn|ann|pkkd|table [--epochs N]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from _calibration import print_calibration
from torch import nn

import netsculpt as ns
from netsculpt.adder import AdderConv2d, PKKDLoss, count_ops, to_adder
from netsculpt.data import make_loaders
from netsculpt.fileio import write_json
from netsculpt.train import TrainConfig, evaluate, train

RESULTS = Path(__file__).parent / "results"
PKKD_GAIN_BAR_PP = 0.3
CNN_GAP_BAR_PP = 1.0


def _time(fn, repeats: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def part_speed() -> dict:
    calibration = print_calibration("speed")
    shapes = [("lenet5 conv2", 64, 20, 50, 5, 0, 12), ("resnet20 layer2 conv", 32, 32, 32, 3, 1, 16)]
    rows = []
    for label, batch, cin, cout, k, pad, side in shapes:
        x = torch.randn(batch, cin, side, side, requires_grad=True)
        times = {}
        for kind, layer in (
            ("conv", nn.Conv2d(cin, cout, k, padding=pad)),
            ("adder", AdderConv2d(cin, cout, k, padding=pad)),
        ):

            def step(layer: nn.Module = layer, x: torch.Tensor = x) -> None:
                layer(x).sum().backward()

            times[kind] = _time(step, 5)
        rows.append(
            {
                "shape": label,
                "batch": batch,
                "conv_s": times["conv"],
                "adder_s": times["adder"],
                "ratio": times["adder"] / times["conv"],
            }
        )
        print(
            f"{label:<22} conv {times['conv'] * 1e3:8.1f} ms  adder {times['adder'] * 1e3:8.1f} ms  "
            f"adder/conv {times['adder'] / times['conv']:.1f}x",
            flush=True,
        )
    print_calibration("speed, after")
    return {"calibration": str(calibration), "rows": rows}


def part_train(kind: str, epochs: int, seed: int) -> dict:
    calibration = print_calibration(kind)
    config = TrainConfig.preset("lenet5_mnist5k", epochs=epochs, seed=seed)
    train_loader, test_loader = make_loaders("mnist5k", batch_size=config.batch_size, augment=True, seed=seed)
    torch.manual_seed(seed)
    model = ns.create_model("lenet5")
    loss_fn = None
    if kind in ("ann", "pkkd"):
        model = to_adder(model, keep=["first", "last"])
    if kind == "pkkd":
        torch.manual_seed(seed + 1)
        loss_fn = PKKDLoss(model, ns.create_model("lenet5"))
    start = time.perf_counter()
    result = train(model, train_loader, test_loader, config, loss_fn=loss_fn)
    seconds = time.perf_counter() - start
    ops = count_ops(model, torch.zeros(1, 1, 28, 28))
    row = {
        "kind": kind,
        "epochs": epochs,
        "seed": seed,
        "final_test_acc": result.final_acc,
        "test_acc_per_epoch": [h["test_acc"] for h in result.history],
        "train_s": seconds,
        "mults": ops.mults,
        "adds": ops.adds,
        "energy_uj_fp32": ops.energy_uj("fp32"),
        "energy_uj_int32": ops.energy_uj("int32"),
        "calibration": str(calibration),
    }
    if kind == "pkkd":
        row["teacher_test_acc"] = evaluate(loss_fn.teacher, test_loader)[0]
    print(json.dumps(row, indent=1), flush=True)
    return row


def part_table() -> int:
    rows = {k: json.loads((RESULTS / f"adder_{k}.json").read_text()) for k in ("cnn", "ann", "pkkd")}
    print(f"{'model':<10} {'test acc':>9} {'mults':>10} {'adds':>10} {'fp32 uJ':>8} {'int32 uJ':>8}")
    for kind, row in rows.items():
        print(
            f"{kind:<10} {row['final_test_acc']:9.2%} {row['mults']:10,} {row['adds']:10,} "
            f"{row['energy_uj_fp32']:8.2f} {row['energy_uj_int32']:8.2f}"
        )
    gain = (rows["pkkd"]["final_test_acc"] - rows["ann"]["final_test_acc"]) * 100
    gap = (rows["cnn"]["final_test_acc"] - rows["pkkd"]["final_test_acc"]) * 100
    ok = gain >= PKKD_GAIN_BAR_PP and gap <= CNN_GAP_BAR_PP
    print(
        f"PKKD gain over ANN {gain:+.2f} pp (bar >= {PKKD_GAIN_BAR_PP}); gap to CNN {gap:.2f} pp "
        f"(bar <= {CNN_GAP_BAR_PP}): {'PASS' if ok else 'MISS'}"
    )
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["speed", "cnn", "ann", "pkkd", "table"], required=True)
    parser.add_argument("--epochs", type=int, default=20)  # the lenet5_mnist5k preset
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.part == "table":
        return part_table()
    row = part_speed() if args.part == "speed" else part_train(args.part, args.epochs, args.seed)
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_json(RESULTS / f"adder_{args.part}.json", row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
