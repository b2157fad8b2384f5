"""AdderNet on the bundled MNIST digits: CNN vs ANN vs ANN + PKKD on LeNet-5, op counts and energy,
and the speed of AdderConv2d against nn.Conv2d on the same shapes.

Parts (each fits in ~15 minutes on one thread; each writes benchmarks/results/adder_<part>.json):

- ``speed``: forward + backward time of nn.Conv2d and AdderConv2d (eager path and compiled kernels) on
  LeNet-5's conv2 and a resnet20 conv, side by side in one run, with the pieces (forward, filter
  gradient, input gradient) and the CPU calibration printed beside them.
- ``cnn`` / ``ann`` / ``pkkd``: LeNet-5 trained from scratch with the same recipe, epochs and seed: the
  CNN, its adder version (``to_adder(keep=["first", "last"])``) from labels, and the adder version with
  PKKD (a fresh CNN teacher trained alongside; knobs ``--alpha --temperature --beta --ramp-epochs``,
  defaults ``PKKD``). The final-epoch test accuracy is reported (no epoch is picked on the test split).
  Results: ``adder_<part>_s<seed>.json``. ``table`` prints the bar over the seeds all three ran (paired
  means): ANN + PKKD >= ANN + 0.3 pp and within 1 pp of CNN.
- ``--holdout``: train on the training split minus 1,000 digits and score those 1,000 instead of the
  test split: how the PKKD knobs were chosen (``adder_holdout_<part>_<tag>_s<seed>.json``).
- ``--epochs N`` (other than the preset's 20) and ``--shared-init`` (the adder filters start as the CNN's,
  ``to_adder(copy_filters=True)``, and the PKKD teacher is that same initial CNN) add ``e<N>_`` / ``si_``
  to the result names, so each budget keeps its own rows; ``table`` takes the same flags. The second
  recipe (docs/adder.md): ``--epochs 5 --shared-init --alpha 0 --beta 1 --ramp-epochs 1``.
- ``--convert-first``: conv1 becomes an adder layer too (``keep=["last"]``), file names gain ``all_``: with
  conv1 kept the ANN matched the CNN on these digits, which leaves a teacher nothing to transfer.

    PYTHONPATH=src:. nice -n 10 python benchmarks/adder_lenet5.py --part speed|cnn|ann|pkkd|table \
        [--epochs N] [--seed S] [--holdout] [--shared-init] [--alpha A --temperature T --beta B \
        --ramp-epochs R]
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from _calibration import print_calibration
from torch import nn

import netsculpt as ns
from netsculpt.adder import AdderConv2d, PKKDLoss, count_ops, neg_l1_distance, to_adder
from netsculpt.adder.fused import fused_clipped_input_grad, fused_kernels, fused_neg_l1_distance
from netsculpt.adder.layer import _eager_input_grad
from netsculpt.adder.layer import _rows as _patch_rows
from netsculpt.data import make_loaders
from netsculpt.fileio import write_json
from netsculpt.search.holdout import holdout_loaders
from netsculpt.train import TrainConfig, evaluate, train

RESULTS = Path(__file__).parent / "results"
PKKD_GAIN_BAR_PP = 0.3
CNN_GAP_BAR_PP = 1.0
HELD_OUT = 1000
DEFAULT_EPOCHS = 20  # the lenet5_mnist5k preset
# PKKD knobs of the test runs: the setting measured on held-out digits (adder_holdout_*.json); the
# first test run (adder_pkkd.json) had no ramp and no label smoothing
KEEP = ("first", "last")  # layers to_adder leaves as they are; --convert-first keeps the last only
PKKD = {"alpha": 0.5, "temperature": 4.0, "beta": 1.0, "ramp_epochs": 5.0, "mutual": 0.0}


def _time(fn, repeats: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def _breakdown(cols: torch.Tensor, weight: torch.Tensor, repeats: int) -> dict[str, float]:
    """Seconds of the layer's pieces on its unfolded patches (images, patch, L), eager vs compiled."""
    g = torch.randn(cols.shape[0], weight.shape[0], cols.shape[2])

    def eager_forward() -> torch.Tensor:  # rows layout and back, as the eager path does
        n, _, positions = cols.shape
        return neg_l1_distance(_patch_rows(cols), weight).reshape(n, positions, -1).transpose(1, 2)

    return {
        "forward_eager_s": _time(eager_forward, repeats),
        "forward_fused_s": _time(lambda: fused_neg_l1_distance(cols, weight), repeats),
        "grad_w_s": _time(lambda: torch.matmul(g, cols.transpose(1, 2)).sum(0), repeats),
        "grad_x_eager_s": _time(
            lambda: _eager_input_grad(_patch_rows(cols), weight, _patch_rows(g)), repeats
        ),
        "grad_x_fused_s": _time(lambda: fused_clipped_input_grad(cols, weight, g), repeats),
    }


def part_speed(repeats: int = 5) -> dict:
    """Forward + backward of nn.Conv2d, AdderConv2d on the eager path and on the compiled kernels."""
    calibration = print_calibration("speed")
    shapes = [
        ("lenet5 conv2", 64, 20, 50, 5, 0, 12),
        ("resnet20 layer2 conv", 32, 32, 32, 3, 1, 16),
        ("resnet20 layer1 conv", 64, 16, 16, 3, 1, 32),  # the training shape: batch 64, 32 px
    ]
    rows = []
    for label, batch, cin, cout, k, pad, side in shapes:
        x = torch.randn(batch, cin, side, side).relu().requires_grad_(True)  # post-ReLU inputs
        conv, adder = nn.Conv2d(cin, cout, k, padding=pad), AdderConv2d(cin, cout, k, padding=pad)

        def step(layer: nn.Module, x: torch.Tensor = x) -> None:
            layer(x).sum().backward()

        with fused_kernels(True):
            step(adder)  # compile outside the timed region (once per shape)
        times = {"conv": _time(lambda c=conv: step(c), repeats)}
        for path, enabled in (("eager", False), ("fused", True)):
            with fused_kernels(enabled):
                times[path] = _time(lambda a=adder: step(a), repeats)
        cols = F.unfold(x.detach(), k, padding=pad)
        parts = _breakdown(cols, adder.weight.detach().reshape(cout, -1), repeats)
        row = {"shape": label, "batch": batch, "conv_s": times["conv"], "adder_eager_s": times["eager"],
               "adder_fused_s": times["fused"], "ratio_eager": times["eager"] / times["conv"],
               "ratio_fused": times["fused"] / times["conv"], "speedup": times["eager"] / times["fused"],
               **parts}  # fmt: skip
        rows.append(row)
        print(
            f"{label:<21} conv {times['conv'] * 1e3:6.1f} ms | adder eager {times['eager'] * 1e3:6.1f} ms "
            f"({row['ratio_eager']:.1f}x conv), fused {times['fused'] * 1e3:6.1f} ms "
            f"({row['ratio_fused']:.1f}x conv): {row['speedup']:.1f}x faster",
            flush=True,
        )
        print(
            "    pieces (ms): " + ", ".join(f"{k[:-2]} {v * 1e3:.1f}" for k, v in parts.items()), flush=True
        )
    after = print_calibration("speed, after")
    return {"calibration": str(calibration), "calibration_after": str(after), "threads": 1, "rows": rows}


def part_train(kind: str, epochs: int, seed: int, holdout: bool, knobs: dict, shared_init: bool,
               keep: tuple[str, ...] = KEEP) -> dict:  # fmt: skip
    calibration = print_calibration(kind)
    config = TrainConfig.preset("lenet5_mnist5k", epochs=epochs, seed=seed)
    if holdout:  # the split is fixed (seed 0) for every candidate; the training seed varies
        train_loader, test_loader, _ = holdout_loaders(
            "mnist5k", val_size=HELD_OUT, batch_size=config.batch_size, augment=True
        )
    else:
        train_loader, test_loader = make_loaders(
            "mnist5k", batch_size=config.batch_size, augment=True, seed=seed
        )
    torch.manual_seed(seed)
    cnn = model = ns.create_model("lenet5")
    loss_fn = None
    if kind in ("ann", "pkkd"):
        model = to_adder(cnn, keep=list(keep), copy_filters=shared_init)
    if kind == "pkkd":
        torch.manual_seed(seed + 1)
        ramp = round(knobs["ramp_epochs"] * len(train_loader))
        teacher = copy.deepcopy(cnn) if shared_init else ns.create_model("lenet5")
        loss_fn = PKKDLoss(model, teacher, alpha=knobs["alpha"], beta=knobs["beta"],
                           temperature=knobs["temperature"], ramp_steps=ramp, mutual=knobs["mutual"],
                           label_smoothing=config.label_smoothing)  # fmt: skip
    start = time.perf_counter()
    result = train(model, train_loader, test_loader, config, loss_fn=loss_fn)
    seconds = time.perf_counter() - start
    ops = count_ops(model, torch.zeros(1, 1, 28, 28))
    row = {
        "kind": kind,
        "epochs": epochs,
        "seed": seed,
        "split": "held-out training digits" if holdout else "test",
        "pkkd": knobs if kind == "pkkd" else None,
        "shared_init": shared_init,
        "kept_conv": list(keep),
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


def _budget(epochs: int, shared_init: bool = False, convert_first: bool = False) -> str:
    """File-name part of a training budget and start: empty for the first runs' (20 epochs, fresh init,
    conv1 kept); ``all_`` when conv1 is an adder layer too."""
    return (("" if epochs == DEFAULT_EPOCHS else f"e{epochs}_") + ("si_" if shared_init else "")
            + ("all_" if convert_first else ""))  # fmt: skip


def _kind_budget(kind: str, epochs: int, shared_init: bool, convert_first: bool) -> str:
    """``_budget`` of one row kind: the CNN row has no adder init and no adder layers."""
    adder = kind != "cnn"
    return _budget(epochs, shared_init and adder, convert_first and adder)


def _rows(kind: str, epochs: int, shared_init: bool, convert_first: bool = False) -> dict[int, dict]:
    """Test-split results of ``kind`` by seed (``adder_<kind>_[e<epochs>_][si_][all_]s<seed>.json``)."""
    rows = {}
    budget = _kind_budget(kind, epochs, shared_init, convert_first)
    for path in sorted(RESULTS.glob(f"adder_{kind}_{budget}s[0-9]*.json")):
        row = json.loads(path.read_text())
        rows[int(row["seed"])] = row
    return rows


def part_table(epochs: int, shared_init: bool, convert_first: bool = False) -> int:
    runs = {k: _rows(k, epochs, shared_init, convert_first) for k in ("cnn", "ann", "pkkd")}
    seeds = sorted(set.intersection(*(set(r) for r in runs.values())))
    if not seeds:
        print("no seed has all of cnn, ann and pkkd yet")
        return 1
    print(f"{epochs} epochs, seeds {seeds}; PKKD knobs {runs['pkkd'][seeds[0]]['pkkd']}")
    print(f"{'model':<10} {'test acc (mean)':>15}  per seed  {'mults':>10} {'adds':>10} {'fp32 uJ':>8}")
    mean = {}
    for kind, rows in runs.items():
        accs = [rows[s]["final_test_acc"] for s in seeds]
        mean[kind] = 100 * sum(accs) / len(accs)
        row = rows[seeds[0]]
        print(
            f"{kind:<10} {mean[kind]:14.2f}%  {' '.join(f'{100 * a:.2f}' for a in accs)}  {row['mults']:10,} "
            f"{row['adds']:10,} {row['energy_uj_fp32']:8.2f}"
        )
    gain, gap = mean["pkkd"] - mean["ann"], mean["cnn"] - mean["pkkd"]
    ok = gain >= PKKD_GAIN_BAR_PP and gap <= CNN_GAP_BAR_PP
    print(
        f"PKKD gain over ANN {gain:+.2f} pp (bar >= {PKKD_GAIN_BAR_PP}); gap to CNN {gap:+.2f} pp "
        f"(bar <= {CNN_GAP_BAR_PP}): {'PASS' if ok else 'MISS'}"
    )
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["speed", "cnn", "ann", "pkkd", "table"], required=True)
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--holdout", action="store_true", help="score held-out training digits, not test")
    parser.add_argument(
        "--shared-init",
        action="store_true",
        help="adder filters start as the CNN's (copy_filters) and the PKKD teacher is that initial CNN",
    )
    parser.add_argument("--convert-first", action="store_true",
                        help="conv1 becomes an adder layer too (to_adder keep=['last'])")  # fmt: skip
    for knob, value in PKKD.items():
        parser.add_argument(f"--{knob.replace('_', '-')}", type=float, default=value)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.part == "table":
        return part_table(args.epochs, args.shared_init, args.convert_first)
    knobs = {knob: getattr(args, knob) for knob in PKKD}
    if args.part == "speed":
        row, name = part_speed(), "adder_speed.json"
    else:
        keep = ("last",) if args.convert_first else KEEP
        row = part_train(args.part, args.epochs, args.seed, args.holdout, knobs, args.shared_init, keep)
        named = {k: v for k, v in knobs.items() if k != "mutual" or v}  # files before mutual keep their names
        tag = "_".join(f"{k[0]}{v:g}" for k, v in named.items()) + "_" if args.part == "pkkd" else ""
        budget = _kind_budget(args.part, args.epochs, args.shared_init, args.convert_first)
        name = (
            f"adder_holdout_{args.part}_{budget}{tag}s{args.seed}.json"
            if args.holdout
            else f"adder_{args.part}_{budget}s{args.seed}.json"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_json(RESULTS / name, row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
