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

``--seed S`` (default 0) seeds the initial weights, the batch order / augmentation and each phase's training;
the test digits are the same for every seed. Seed S > 0 stores its results as ``<split>-sS-<run>.json``
(seed 0 keeps the plain names). ``--report --seeds 0,1`` prints every seed's table and reads the bars on
the mean over the seeds.

Run names (E = ``--epochs``):
  dense              dense for E epochs, lr 0.05
  pre-D              dense for D epochs (the start of the one-shot and 2:4 runs; shared by them)
  oneshot-D-lrX      pre-D, then 90 % magnitude at once (per layer, conv1 dense) + E-D epochs at lr X
  nm-D-lrX           the same with 2:4 (D = 0: masks at initialisation, E epochs from scratch)
  gap-kK-pP-lrX      GaP 90 % from scratch: K partitions, P epochs a phase, lr X restarting each phase
  gap-kK-pP-fF-lrX   the same with a final all-sparse phase of F epochs (default P)
  gap-...-lrX-fromD  GaP from pre-D's trained weights over the remaining E-D epochs (after -once)
  gap-...-lrX-once   the same with one lr schedule (dense's cosine from X over E epochs) across all
                     the phases instead of a restart each phase (SparsityConfig.restart_lr=False)
  oneshot-...-erk, gap-...-erk
                     the same with the 90 % split between layers by shape (SparsityConfig.scope="erk":
                     small layers denser, big ones sparser, 90 % overall) instead of 90 % in every layer
  ...-glob           one magnitude threshold over the layers masked together (scope="global")
  ...-fcd            fc (640 weights, 0.2 % of them) stays dense too; the other layers take the
                     fraction that keeps the counted layers 90 % zeros overall (about 90.2 % each)

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
    r"|gap-k(?P<k>\d+)-p(?P<p>\d+)(?:-f(?P<f>\d+))?-lr(?P<glr>[\d.]+)(?P<once>-once)?(?:-from(?P<gd>\d+))?)"
    r"(?P<scope>-erk|-glob)?(?P<fcd>-fcd)?$"
)


def recipe(epochs: int, lr: float, seed: int = 0) -> TrainConfig:
    return TrainConfig(epochs=epochs, batch_size=64, lr=lr, warmup_epochs=0, augment=True, seed=seed)


def tagged(name: str, seed: int) -> str:
    """Run ``name``'s file and folder stem for ``seed``: seed 0 keeps the names of the first runs."""
    return name if seed == 0 else f"s{seed}-{name}"


def skip_conv1(module: torch.nn.Module, name: str) -> bool:
    """conv1 stays dense (27 inputs a filter: not a multiple of 4, and 1 % of the weights)."""
    return name != "conv1" and isinstance(module, (torch.nn.Conv2d, torch.nn.Linear))


def skip_conv1_fc(module: torch.nn.Module, name: str) -> bool:
    """conv1 and the classifier stay dense (fc at 90 % keeps 6 of 64 features a class)."""
    return name != "fc" and skip_conv1(module, name)


def layer_choice(model: torch.nn.Module, match: re.Match[str]) -> dict[str, Any]:
    """SparsityConfig fields for the run's scope suffix; ``-fcd`` raises the masked layers' fraction so
    the layers the table counts (every one but conv1) stay 90 % zeros overall."""
    scope = {"-erk": "erk", "-glob": "global"}.get(match["scope"] or "", "layer")
    if not match["fcd"]:
        return {"sparsity": 0.9, "scope": scope, "filter_fn": skip_conv1}
    count = [m.weight.numel() for n, m in model.named_modules() if skip_conv1(m, n)]
    masked = [m.weight.numel() for n, m in model.named_modules() if skip_conv1_fc(m, n)]
    return {"sparsity": 0.9 * sum(count) / sum(masked), "scope": scope, "filter_fn": skip_conv1_fc}


def fresh(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return ns.create_model("resnet20_cifar", num_classes=10, in_channels=3)


def loaders(split: str, seed: int = 0) -> tuple[Any, Any]:
    """Train / score loaders; on ``val`` the held-out digits stay seed 0's, the order follows ``seed``."""
    if split == "val":
        tl, val, _ = holdout_loaders(
            "mnist5k", val_size=500, batch_size=64, augment=True, order_seed=seed, **DATA
        )
        return tl, val
    return make_loaders("mnist5k", batch_size=64, augment=True, seed=seed, **DATA)


def start_from(model: torch.nn.Module, name: str, split: str, seed: int, d: int) -> None:
    """Load pre-``d``'s weights into ``model`` (``d`` = 0: keep the fresh initialisation)."""
    if not d:
        return
    base = WORK / split / tagged(f"pre-{d}", seed) / "model.safetensors"
    if not base.is_file():
        raise SystemExit(f"{name} starts from pre-{d}: run pre-{d} first (the same --split)")
    model.load_state_dict(load_file(str(base)))


def run_one(name: str, split: str, epochs: int, data: tuple[Any, Any], seed: int = 0) -> dict[str, Any]:
    """Train run ``name`` (resuming its checkpoints) and return its result record."""
    match = PATTERN.match(name)
    if match is None:
        raise SystemExit(f"unknown run {name!r}: see the names in this script's docstring")
    tl, te = data
    folder = WORK / split / tagged(name, seed)
    model = fresh(seed)
    record: dict[str, Any] = {"run": name, "split": split, "seed": seed, "total_epochs": epochs}
    if match["dense"] or match["pre"]:
        n = epochs if match["dense"] else int(match["pre"])
        run = train(model, tl, te, recipe(n, 0.05, seed), out_dir=folder, resume=True)
        record.update(epochs=n, history=[h.get("test_acc") for h in run.history])
    elif match["kind"]:
        d, lr = int(match["d"]), float(match["lr"])
        start_from(model, name, split, seed, d)
        pattern = "2:4" if match["kind"] == "nm" else "unstructured"
        # nm-...-erk: SparsityConfig refuses it, naming why
        config = SparsityConfig(pattern=pattern, **layer_choice(model, match))
        out = sparsify(model, config, tl, te, recipe(epochs - d, lr, seed), out_dir=folder, resume=True)
        record.update(phases=out.phases, layer_sparsity=out.layer_sparsity)
    else:
        k, p, lr, f = int(match["k"]), int(match["p"]), float(match["glr"]), int(match["f"] or 0)
        d = int(match["gd"] or 0)
        start_from(model, name, split, seed, d)
        config = SparsityConfig(
            method="gap",
            partitions=k,
            phase_epochs=p,
            final_epochs=f,
            restart_lr=not match["once"],
            **layer_choice(model, match),
        )
        out = sparsify(model, config, tl, te, recipe(epochs - d, lr, seed), out_dir=folder, resume=True)
        record.update(phases=out.phases, layer_sparsity=out.layer_sparsity)
    weights = [m.weight for n, m in model.named_modules() if skip_conv1(m, n)]
    record["zeros"] = sum(float((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)
    record["acc"] = evaluate(model, te)[0]
    return record


def seed_table(args: argparse.Namespace, seed: int) -> dict[str, float]:
    """Seed ``seed``'s table from the stored results of ``args.split``; its accuracies by label."""
    chosen = {"dense": "dense", "GaP 90%": args.gap, "one-shot 90% + FT": args.oneshot, "2:4": args.nm}
    rows, acc = [], {}
    for label, name in chosen.items():
        path = RESULTS / f"{args.split}-{tagged(name, seed)}.json"
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
        f"resnet20_cifar / mnist5k ({args.split}, seed {seed}), {args.epochs} epochs each",
        ("model", "run", "acc", "vs dense", "zeros", "min"),
        rows,
    )
    return acc


def report(args: argparse.Namespace) -> None:
    """Every seed's table, then the bars on the mean over the seeds (a run not yet done: said so)."""
    seeds = [int(s) for s in args.seeds.split(",")]
    per_seed = [seed_table(args, seed) for seed in seeds]
    labels = ("dense", "GaP 90%", "one-shot 90% + FT", "2:4")
    acc = {k: [a[k] for a in per_seed if k in a] for k in labels}  # 2:4 may have seed 0 only
    if len(seeds) > 1:
        rows = [
            (
                k,
                *(f"{a[k]:.2%}" if k in a else "not run" for a in per_seed),
                f"{sum(acc[k]) / len(acc[k]):.2%} ({len(acc[k])})" if acc[k] else "",
            )
            for k in labels
        ]
        table(
            f"mean over seeds {args.seeds} ({args.split})",
            ("model", *(f"seed {s}" for s in seeds), "mean (seeds)"),
            rows,
        )
    bars = (
        ("dense", "GaP 90%", lambda gap: gap <= 0.5, "GaP {:+.2f} pp vs dense{}, within 0.5"),
        ("one-shot 90% + FT", "GaP 90%", lambda gain: gain >= 0.3, "GaP {:+.2f} pp vs one-shot{}, >= 0.3"),
        ("dense", "2:4", lambda gap: gap <= 0.5, "2:4 {:+.2f} pp vs dense{}, within 0.5"),
    )
    for ref, model, passes, text in bars:
        both = [i for i, a in enumerate(per_seed) if ref in a and model in a]  # seeds that ran both
        if not both:
            missing = f"{model} vs {ref}: not measured (a run is missing for seeds {args.seeds})"
            FAILURES.append(missing)
            print("MISSING " + missing)
            continue
        diff = sum(per_seed[i][model] - per_seed[i][ref] for i in both) / len(both) * 100
        over = f" (mean of seeds {','.join(str(seeds[i]) for i in both)})" if len(seeds) > 1 else ""
        print(bar(passes(diff if ref != "dense" else -diff), text.format(diff, over)))


def listing(split: str) -> None:
    """Every stored result of ``split``, best first: the held-out selection table."""
    rows = []
    for path in sorted(RESULTS.glob(f"{split}-*.json")):
        rec = read_json_file(path)
        run = tagged(rec["run"], rec.get("seed", 0))
        rows.append((run, f"{rec['acc']:.2%}", f"{rec['zeros']:.1%}", f"{rec['seconds'] / 60:.0f}"))
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
    parser.add_argument("--seed", type=int, default=0, help="the seed of the runs --runs trains")
    parser.add_argument("--seeds", default="0", help="--report: comma-separated seeds, bars on their mean")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    for name in filter(None, args.runs.split(",")):
        path = RESULTS / f"{args.split}-{tagged(name, args.seed)}.json"
        weights = WORK / args.split / tagged(name, args.seed) / "model.safetensors"
        if path.is_file() and (not name.startswith("pre-") or weights.is_file()):
            print(f"{name}: done ({read_json_file(path)['acc']:.2%})", flush=True)
            continue  # a pre-D whose weights are gone (runs/ is not kept) trains again: runs start there
        # fresh loaders per run: their generators carry on across train() calls, so sharing them made a
        # run's batches depend on the runs before it in the same process (found 2026-12-06)
        data = loaders(args.split, args.seed)
        print_calibration(f"{name} start")
        start = time.perf_counter()
        record = run_one(name, args.split, args.epochs, data, args.seed)
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
