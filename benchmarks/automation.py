"""Learned compression policies (issue 18): AMC vs uniform vs GA widths, HAQ mixed-bit palettization.

Run in parts (each < 20 min on this machine), results appended to JSON files, then ``--part table``:

    PYTHONPATH=src python benchmarks/automation.py --part amc --seed 0     # one seed: uniform, AMC, GA
    PYTHONPATH=src python benchmarks/automation.py --part haq --model lenet5   # or resnet20
    PYTHONPATH=src python benchmarks/automation.py --part table

AMC part: resnet20_cifar on mnist5k (32x32, 3 channels) at 0.5x MACs. Uniform, AMC and GA widths all
keep the channels the ``l1`` criterion chooses and get the same KD fine-tune (``finetune`` preset,
``--finetune-epochs`` epochs, training seed = the part's seed). Searches score candidates on 500
training images held out from the baseline's training; the test split is only used for the final
numbers. The search wall times of AMC and GA are measured in the same run, beside the CPU calibration.
Bar: AMC's mean test accuracy over seeds >= uniform's.

HAQ part: mixed-bit palettization (k-means candidates scored on held-out batches, then DKM fine-tuning
of the chosen bits) at the packed size of uniform 3 bits vs uniform 3 bits with the same DKM budget. Bar:
accuracy >= uniform + 0.3 pp, or the same accuracy at >= 15% fewer bytes.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from _calibration import print_calibration
from _tables import bar, table
from safetensors.torch import load_file, save_file

import netsculpt as ns
from netsculpt.search import CONFIGS, SearchSpace, finetune_pruned, search_widths
from netsculpt.search.holdout import holdout_loaders
from netsculpt.train import TrainConfig, evaluate, train

TARGET = 0.5
DATA = {"resize": 32, "channels": 3}
VAL_SIZE = 500
RESULTS = Path("benchmarks/results")


def resnet_baseline(
    cache: Path, epochs: int, train_loader, test_loader, name: str = "resnet20_cifar"
) -> torch.nn.Module:
    """The same cached baseline as benchmarks/search.py (trained once, reused); a deeper ``name``
    (resnet56_cifar) trains with per-epoch checkpoints in the cache, so an interrupted run resumes."""
    torch.manual_seed(0)
    model = ns.create_model(name, num_classes=10, in_channels=3)
    short = name.removesuffix("_cifar")
    path = cache / f"{short}_mnist5k_holdout{VAL_SIZE}_e{epochs}.safetensors"
    if path.exists():
        model.load_state_dict(load_file(str(path)))
        return model.eval()
    config = TrainConfig.preset("default", epochs=epochs, batch_size=64, lr=0.05)
    resumable = {} if short == "resnet20" else {"out_dir": cache / f"{short}_teacher", "resume": True}
    train(model, train_loader, test_loader, config, **resumable)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return model.eval()


def amc_part(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    calibration = print_calibration("start")
    train_loader, held, test_loader = holdout_loaders(
        "mnist5k", val_size=VAL_SIZE, batch_size=64, eval_batch_size=125, **DATA
    )
    base = resnet_baseline(Path(args.cache), 4, train_loader, test_loader)
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    base_acc = evaluate(base, test_loader)[0]
    graph = ns.trace(base, x)
    common = {"eval_batches": 2, "full_batches": 4, "seed": args.seed}
    searches = {
        "amc": CONFIGS["amc"](episodes=args.episodes, warmup=max(1, args.episodes // 4), **common),
        "genetic": CONFIGS["genetic"](pop_size=16, generations=8, **common),
    }
    plans, seconds, scored = {}, {}, {}
    scores = None
    for method, config in searches.items():
        start = time.perf_counter()
        result = search_widths(base, x, method, f"macs={TARGET}", train_loader, held, config, graph=graph)
        seconds[method] = time.perf_counter() - start
        plans[method], scored[method] = result.plan, sum(result.evaluated.values())
        widths = list(result.widths.values())
        print(f"{method}: {seconds[method]:.0f} s, {scored[method]} scores, widths {widths}")
        if method == "amc":
            policy = result.history["policy"]["accuracy"]
            print(f"  AMC picked {result.history['picked']}; noiseless policy held-out acc {policy:.2%}")
    from netsculpt.importance import get_criterion

    scores = get_criterion("l1").score(base, graph, None)
    space = SearchSpace(base, x, graph, scores)
    plans["uniform"] = space.plan(space.fit(np.ones(len(space)), "macs", TARGET))
    rows = {}
    tc = TrainConfig.preset("finetune", epochs=args.finetune_epochs, seed=args.seed)
    ft_train, _, _ = holdout_loaders(
        "mnist5k",
        val_size=VAL_SIZE,
        batch_size=tc.batch_size,
        augment=tc.augment,
        order_seed=args.seed,  # each seed its own batch order, same split
        **DATA,
    )
    for label in ("uniform", "amc", "genetic"):
        model = ns.apply_plan(base, plans[label], x, graph=graph)
        macs = ns.measure(model, x, latency=False).macs
        start = time.perf_counter()
        finetune_pruned(model, base, ft_train, test_loader, tc)
        acc = evaluate(model, test_loader)[0]
        rows[label] = {"acc": acc, "macs": macs, "finetune_s": time.perf_counter() - start}
        print(f"  {label}: {acc:.2%} after {args.finetune_epochs} KD epochs, {macs:,} MACs", flush=True)
    end = print_calibration("end")
    record = {
        "seed": args.seed,
        "base_acc": base_acc,
        "base_macs": ns.measure(base, x, latency=False).macs,
        "rows": rows,
        "search_s": seconds,
        "scored": scored,
        "episodes": args.episodes,
        "finetune_epochs": args.finetune_epochs,
        "calibration": [str(calibration), str(end)],
    }
    _append(RESULTS / "automation_amc.json", record)


def _append(path: Path, record: dict) -> None:
    data = json.loads(path.read_text()) if path.exists() else []
    data = [r for r in data if r.get("seed") != record.get("seed") or r.get("model") != record.get("model")]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([*data, record], indent=1))


def table_part(args: argparse.Namespace) -> None:
    path = RESULTS / "automation_amc.json"
    if path.exists():
        runs = json.loads(path.read_text())
        rows = []
        for label in ("uniform", "amc", "genetic"):
            accs = [r["rows"][label]["acc"] for r in runs]
            rows.append((label, f"{np.mean(accs):.2%}", " ".join(f"{a:.2%}" for a in accs),
                         f"{runs[0]['rows'][label]['macs'] / runs[0]['base_macs']:.3f}"))  # fmt: skip
        bases = " ".join(f"{r['base_acc']:.2%}" for r in runs)  # a cache lost between runs is retrained
        table(
            f"resnet20_cifar on mnist5k at {TARGET}x MACs, KD fine-tune {runs[0]['finetune_epochs']} epochs, "
            f"{len(runs)} seed(s) (baseline per seed {bases})",
            ("widths", "mean test acc", "per seed", "MACs"),
            rows,
        )
        amc_s = [r["search_s"]["amc"] for r in runs]
        ga_s = [r["search_s"]["genetic"] for r in runs]
        print(f"  search wall time, same run: AMC {np.mean(amc_s):.0f} s ({runs[0]['episodes']} episodes) "
              f"vs GA {np.mean(ga_s):.0f} s: AMC/GA = {np.mean(amc_s) / np.mean(ga_s):.2f}x")  # fmt: skip
        for r in runs:
            print(f"  seed {r['seed']} calibration: {r['calibration'][0]} | {r['calibration'][1]}")
        gain = np.mean([r["rows"]["amc"]["acc"] for r in runs]) - np.mean(
            [r["rows"]["uniform"]["acc"] for r in runs]
        )
        print(bar(gain >= 0, f"AMC mean - uniform mean = {gain * 100:+.2f} pp (bar >= 0)"))
    path = RESULTS / "automation_haq.json"
    if path.exists():
        for r in json.loads(path.read_text()):
            print(f"\n== HAQ {r['model']}: " + r["summary"])
            for line in r["lines"]:
                print("  " + line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("amc", "haq", "int", "int4", "table"), required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--episodes", type=int, default=60)
    parser.add_argument("--finetune-epochs", type=int, default=3)
    parser.add_argument("--model", default="lenet5", choices=("lenet5", "resnet20"))
    parser.add_argument("--cache", default="runs/bench/search")
    args = parser.parse_args(argv)
    if args.part == "amc":
        amc_part(args)
    elif args.part in ("haq", "int", "int4"):
        from _haq_bench import haq_part, int4_part, int_part

        {"haq": haq_part, "int": int_part, "int4": int4_part}[args.part](args)
    else:
        table_part(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
