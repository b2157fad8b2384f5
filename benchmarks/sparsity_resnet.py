"""resnet20_cifar / mnist5k sparsity bars (issue 20) at a longer schedule, in resumable parts.

The same total epochs for every model (``--epochs``, 20 by default). On a shared two-core machine the
comparison takes too long for one process, so every model is its own part: ``--runs A,B`` trains the
named runs one after the other, each checkpointed every epoch under ``runs/sparsity_resnet/`` (an
interrupted part resumes where it stopped when launched again) and each writing its result to
``benchmarks/results/sparsity_resnet/<split>-<run>.json``; a finished run is skipped. ``--report``
reads those files and prints the table and the bars.

``--split val`` holds 500 of the 4,000 training digits out and scores on them: the recipes (GaP's
partitions and cycle length, the fine-tune lr, how many epochs come before pruning) are chosen there;
``--split test`` trains on all 4,000 and scores on the 1,000 test digits, with the chosen recipes only.

Run names (E = ``--epochs``):
  dense              dense for E epochs, lr 0.05
  pre-D              dense for D epochs (the start of the one-shot and 2:4 runs; shared by them)
  oneshot-D-lrX      pre-D, then 90 % magnitude at once (per layer, conv1 dense) + E-D epochs at lr X
  nm-D-lrX           the same with 2:4 (D = 0: masks at initialisation, E epochs from scratch)
  gap-kK-pP-lrX      GaP 90 % from scratch: K partitions, P epochs a phase, lr X restarting each phase
  gap-kK-pP-fF-lrX   the same with a final all-sparse phase of F epochs (default P)

    PYTHONPATH=src:benchmarks python benchmarks/sparsity_resnet.py --split val --runs pre-10,oneshot-10-lr0.02
    PYTHONPATH=src:benchmarks python benchmarks/sparsity_resnet.py --split test --report \\
        --gap gap-k4-p2-lr0.05 --oneshot oneshot-10-lr0.02 --nm nm-10-lr0.02
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path
from typing import Any

import torch
from _calibration import print_calibration
from _tables import FAILURES, bar, table
from safetensors.torch import load_file

import netsculpt as ns
from netsculpt.data import make_loaders
from netsculpt.fileio import write_json
from netsculpt.jsoncheck import read_json_file
from netsculpt.search.holdout import holdout_loaders
from netsculpt.sparsity import SparsityConfig, sparsify
from netsculpt.train import TrainConfig, evaluate, train

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results" / "sparsity_resnet"
WORK = ROOT.parent / "runs" / "sparsity_resnet"
DATA = {"resize": 32, "channels": 3}
PATTERN = re.compile(
    r"^(?:(?P<dense>dense)|pre-(?P<pre>\d+)|(?P<kind>oneshot|nm)-(?P<d>\d+)-lr(?P<lr>[\d.]+)"
    r"|gap-k(?P<k>\d+)-p(?P<p>\d+)(?:-f(?P<f>\d+))?-lr(?P<glr>[\d.]+))$"
)


def recipe(epochs: int, lr: float) -> TrainConfig:
    return TrainConfig(epochs=epochs, batch_size=64, lr=lr, warmup_epochs=0, augment=True)


def skip_conv1(module: torch.nn.Module, name: str) -> bool:
    """conv1 stays dense (27 inputs a filter: not a multiple of 4, and 1 % of the weights)."""
    return name != "conv1" and isinstance(module, (torch.nn.Conv2d, torch.nn.Linear))


def fresh() -> torch.nn.Module:
    torch.manual_seed(0)
    return ns.create_model("resnet20_cifar", num_classes=10, in_channels=3)


def loaders(split: str) -> tuple[Any, Any]:
    if split == "val":
        tl, val, _ = holdout_loaders("mnist5k", val_size=500, batch_size=64, augment=True, **DATA)
        return tl, val
    return make_loaders("mnist5k", batch_size=64, augment=True, seed=0, **DATA)


def run_one(name: str, split: str, epochs: int, data: tuple[Any, Any]) -> dict[str, Any]:
    """Train run ``name`` (resuming its checkpoints) and return its result record."""
    match = PATTERN.match(name)
    if match is None:
        raise SystemExit(f"unknown run {name!r}: see the names in this script's docstring")
    tl, te = data
    folder = WORK / split / name
    model = fresh()
    record: dict[str, Any] = {"run": name, "split": split, "total_epochs": epochs}
    if match["dense"] or match["pre"]:
        n = epochs if match["dense"] else int(match["pre"])
        run = train(model, tl, te, recipe(n, 0.05), out_dir=folder, resume=True)
        record.update(epochs=n, history=[h.get("test_acc") for h in run.history])
    elif match["kind"]:
        d, lr = int(match["d"]), float(match["lr"])
        if d:
            base = WORK / split / f"pre-{d}" / "model.safetensors"
            if not base.is_file():
                raise SystemExit(f"{name} starts from pre-{d}: run pre-{d} first (the same --split)")
            model.load_state_dict(load_file(str(base)))
        pattern = "2:4" if match["kind"] == "nm" else "unstructured"
        config = SparsityConfig(0.9, pattern=pattern, filter_fn=skip_conv1)
        out = sparsify(model, config, tl, te, recipe(epochs - d, lr), out_dir=folder, resume=True)
        record.update(phases=out.phases, layer_sparsity=out.layer_sparsity)
    else:
        k, p, lr, f = int(match["k"]), int(match["p"]), float(match["glr"]), int(match["f"] or 0)
        config = SparsityConfig(
            0.9, method="gap", partitions=k, phase_epochs=p, final_epochs=f, filter_fn=skip_conv1
        )
        out = sparsify(model, config, tl, te, recipe(epochs, lr), out_dir=folder, resume=True)
        record.update(phases=out.phases, layer_sparsity=out.layer_sparsity)
    weights = [m.weight for n, m in model.named_modules() if skip_conv1(m, n)]
    record["zeros"] = sum(float((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)
    record["acc"] = evaluate(model, te)[0]
    return record


def report(args: argparse.Namespace) -> None:
    """The table and the bars from the stored results of ``args.split`` (a run not yet done: said so)."""
    chosen = {"dense": "dense", "GaP 90%": args.gap, "one-shot 90% + FT": args.oneshot, "2:4": args.nm}
    rows, acc = [], {}
    for label, name in chosen.items():
        path = RESULTS / f"{args.split}-{name}.json"
        if not path.is_file():
            rows.append((label, name, "not run", "", "", ""))
            continue
        rec = read_json_file(path)
        acc[label] = rec["acc"]
        rows.append(
            (label, name, f"{rec['acc']:.2%}", "", f"{rec['zeros']:.1%}", f"{rec['seconds'] / 60:.0f}")
        )
    d = acc.get("dense")
    rows = [(*r[:3], f"{(acc[r[0]] - d) * 100:+.2f} pp" if r[0] in acc and d else "", *r[4:]) for r in rows]
    table(
        f"resnet20_cifar / mnist5k ({args.split}), {args.epochs} epochs each",
        ("model", "run", "acc", "vs dense", "zeros", "min"),
        rows,
    )
    g, o, s = (acc.get(k) for k in ("GaP 90%", "one-shot 90% + FT", "2:4"))
    checks = (
        (d, g, lambda: ((d - g) * 100 <= 0.5, f"GaP {(g - d) * 100:+.2f} pp vs dense, within 0.5")),
        (g, o, lambda: ((g - o) * 100 >= 0.3, f"GaP {(g - o) * 100:+.2f} pp vs one-shot, >= 0.3")),
        (d, s, lambda: ((d - s) * 100 <= 0.5, f"2:4 {(s - d) * 100:+.2f} pp vs dense, within 0.5")),
    )
    for index, (x, y, check) in enumerate(checks):
        if x is None or y is None:
            text = ("GaP vs dense", "GaP vs one-shot", "2:4 vs dense")[
                index
            ] + ": not measured (a run is missing)"
            FAILURES.append(text)
            print("MISSING " + text)
        else:
            print(bar(*check()))


def listing(split: str) -> None:
    """Every stored result of ``split``, best first: the held-out selection table."""
    rows = []
    for path in sorted(RESULTS.glob(f"{split}-*.json")):
        rec = read_json_file(path)
        rows.append((rec["run"], f"{rec['acc']:.2%}", f"{rec['zeros']:.1%}", f"{rec['seconds'] / 60:.0f}"))
    rows.sort(key=lambda r: (r[0].split("-")[0], -float(r[1][:-1])))
    table(f"every {split} run", ("run", "acc", "zeros", "min"), rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("val", "test"), required=True)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--runs", default="", help="comma-separated run names")
    parser.add_argument("--report", action="store_true")
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--gap", default="gap-k4-p2-lr0.05")
    parser.add_argument("--oneshot", default="oneshot-10-lr0.02")
    parser.add_argument("--nm", default="nm-10-lr0.02")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    data = None
    for name in filter(None, args.runs.split(",")):
        path = RESULTS / f"{args.split}-{name}.json"
        if path.is_file():
            print(f"{name}: done ({read_json_file(path)['acc']:.2%})", flush=True)
            continue
        data = data or loaders(args.split)
        print_calibration(f"{name} start")
        start = time.perf_counter()
        record = run_one(name, args.split, args.epochs, data)
        record["seconds"] = time.perf_counter() - start
        record["calibration_end"] = str(print_calibration(f"{name} end"))
        write_json(path, record)
        print(f"{name}: {record['acc']:.2%} ({record['zeros']:.1%} zeros)", flush=True)
    if args.list:
        listing(args.split)
    if args.report:
        report(args)
        print("\nmissed:" if FAILURES else "\nall bars met", *FAILURES, sep="\n  ")
        return 1 if FAILURES else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
