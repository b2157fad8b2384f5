"""Every criterion's choice measured where it shows: right after pruning, after BN re-estimation, and after
a short fixed fine-tune, over 5 seeds of the base model, with Torch-Pruning 1.6.1's importances alongside.

Settings (``--settings``):

- ``lenet_w23``: LeNet-5 on mnist5k pruned to the HRel paper's conv widths (20, 50 -> 2, 3);
- ``lenet_m03``: LeNet-5 pruned to 0.3x MACs with the global allocation;
- ``resnet_m05``: resnet20_cifar on mnist5k (resized to 32 px, 3 channels) at 0.5x MACs, uniform
  allocation (every group loses the same fraction; as ``criteria_resnet.py``).

Each base (seeds 0..``--bases``-1; LeNet-5 with preset ``lenet5_mnist5k``, resnet20 with 5 epochs of the
``criteria_resnet.py`` recipe) is trained once and cached with ``ns.save`` under ``--cache``. Every row
prunes the same base with the same 16 x 64 calibration training digits; the fine-tune is the
``finetune`` preset (SGD lr 0.01 cosine, batch 64, shifts) with seed 0, 3 epochs for LeNet-5 and 1 for
resnet20 (an epoch there costs ~40 s on one thread; ``--tune-epochs`` sets both).
Accuracy is on the 1,000 test digits, which choose nothing here: the estimator settings were selected on
held-out training digits (``hrel_diagnostic.py``). Results go to ``--out`` (JSON, rewritten after every
row), so a long run can be read while it goes; the bars (issue 15) are printed at the end.

    PYTHONPATH=src python benchmarks/criteria_oneshot.py [--bases 5] [--settings lenet_w23,resnet_m05]
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from _calibration import print_calibration
from _criteria_bench import set_threads
from torch import nn

import netsculpt as ns
from netsculpt.allocate import widths_plan
from netsculpt.allocate.targets import target_plan
from netsculpt.data import make_loaders
from netsculpt.fileio import write_json
from netsculpt.importance import get_criterion
from netsculpt.measure import count_macs
from netsculpt.search.evaluator import adapt_batchnorm_
from netsculpt.train import TrainConfig, evaluate, train

TP_LENET = ["MagnitudeImportance p=1", "MagnitudeImportance p=2", "TaylorImportance", "FPGMImportance",
            "LAMPImportance", "RandomImportance"]  # fmt: skip
TP_RESNET = [
    "MagnitudeImportance p=1",
    "TaylorImportance",
    "GroupMagnitudeImportance p=2",
    "BNScaleImportance",
]


@dataclass
class Setting:
    name: str
    title: str
    model: str
    data: dict[str, Any]
    fit: TrainConfig
    widths: dict[str, int] | None = None
    macs: float | None = None
    strategy: str = "global"
    tp: tuple[str, ...] = ()
    tune_epochs: int = 3


def settings() -> dict[str, Setting]:
    lenet_fit = TrainConfig.preset("lenet5_mnist5k")
    resnet_fit = TrainConfig.preset("default", epochs=5, batch_size=64, lr=0.05, warmup_epochs=1)
    resnet_data = {"resize": 32, "channels": 3}
    return {
        "lenet_w23": Setting("lenet_w23", "LeNet-5, conv widths (2, 3)", "lenet5", {}, lenet_fit,
                             widths={"conv1": 2, "conv2": 3}, tp=tuple(TP_LENET)),
        "lenet_m03": Setting("lenet_m03", "LeNet-5, 0.3x MACs, global", "lenet5", {}, lenet_fit, macs=0.3,
                             tp=tuple(TP_LENET)),
        "resnet_m05": Setting("resnet_m05", "resnet20_cifar (32 px, 3 ch), 0.5x MACs, uniform",
                              "resnet20_cifar", resnet_data, resnet_fit, macs=0.5, strategy="uniform",
                              tp=tuple(TP_RESNET), tune_epochs=1),
    }  # fmt: skip


def base_model(s: Setting, seed: int, cache: Path) -> nn.Module:
    """The trained base of ``seed`` (cached with ns.save; the initial weights come from the seed)."""
    folder = cache / f"{s.model}_seed{seed}"
    if (folder / "model.safetensors").exists():
        return ns.load(folder).eval()
    torch.manual_seed(seed)
    kwargs = {"num_classes": 10, "in_channels": 3} if s.data.get("channels") == 3 else {}
    model = ns.create_model(s.model, **kwargs)
    train_loader, test_loader = make_loaders(
        "mnist5k", batch_size=s.fit.batch_size, augment=s.fit.augment, seed=seed, **s.data
    )
    train(model, train_loader, test_loader, s.fit.replace(seed=seed))
    ns.save(model, folder)
    return model.eval()


def tp_pruner(name: str, s: Setting, x: torch.Tensor, calib: list, base_macs: int) -> Callable:
    """Prune a copy with Torch-Pruning's importance ``name`` to the setting's widths or MACs goal."""
    import torch_pruning as tp

    def importance():
        kind, _, p = name.partition(" p=")
        cls = getattr(tp.importance, kind)
        return cls(p=int(p)) if p else cls()

    def run(model: nn.Module, ratio: float | None) -> nn.Module:
        torch.manual_seed(0)  # RandomImportance: the same draw at every ratio, so the bisection is monotone
        if name.startswith("Taylor"):
            model.zero_grad()
            for inputs, labels in calib:
                F.cross_entropy(model(inputs), labels).backward()
        final = model.fc if hasattr(model, "fc") else model.fc2
        if s.widths is not None:  # exact widths: per-layer ratios, the fully connected layers untouched
            mods = dict(model.named_modules())
            # TP keeps int(C * (1 - ratio)) channels: half a channel of slack against rounding
            ratios = {mods[k]: 1 - (w + 0.5) / mods[k].out_channels for k, w in s.widths.items()}
            ignored = [m for m in model.modules() if isinstance(m, nn.Linear)]
            pruner = tp.pruner.MetaPruner(model, x, importance=importance(), pruning_ratio_dict=ratios,
                                          ignored_layers=ignored)  # fmt: skip
        else:
            pruner = tp.pruner.MetaPruner(model, x, importance=importance(), pruning_ratio=ratio,
                                          global_pruning=s.strategy == "global", max_pruning_ratio=0.97,
                                          ignored_layers=[final])  # fmt: skip
        pruner.step()
        model.zero_grad(set_to_none=True)
        return model

    def prune(model: nn.Module) -> nn.Module:
        if s.widths is not None:
            return run(model, None)
        lo, hi = 0.0, 0.97  # the smallest ratio whose MACs are <= the goal (MACs fall as it grows)
        for _ in range(14):
            mid = (lo + hi) / 2
            m = run(copy.deepcopy(model), mid)
            lo, hi = (lo, mid) if count_macs(m, x)[0] <= s.macs * base_macs else (mid, hi)
        return run(model, hi)

    return prune


def ns_pruner(name: str, s: Setting, x: torch.Tensor, calib: list) -> Callable:
    def prune(model: nn.Module) -> nn.Module:
        graph = ns.trace(model, x)
        crit = get_criterion(name)
        if hasattr(crit, "calib_batches"):
            crit.calib_batches = len(calib)
        scores = crit.score(model, graph, calib)
        if s.widths is not None:
            plan = widths_plan(graph, scores, s.widths)
        else:
            plan = target_plan(model, x, graph, scores, ns.Target(macs=s.macs), strategy=s.strategy)
        return ns.apply_plan(model, plan, x, graph=graph)

    return prune


def has_bn(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def run_setting(s: Setting, args: argparse.Namespace, results: dict, save: Callable[[], None]) -> None:
    cache = Path(args.cache)
    calib_loader, test_loader = make_loaders("mnist5k", batch_size=64, augment=False, seed=1, **s.data)
    # a list, not the loader: its shuffle generator advances, so every row would see other digits
    calib = list(itertools.islice(calib_loader, args.calib_batches))
    x = calib[0][0][:1]
    tune = TrainConfig.preset("finetune", epochs=args.tune_epochs or s.tune_epochs, seed=0)
    names = [n for n in (args.criteria.split(",") if args.criteria else ns.list_criteria()) if n]
    rows = [(n, ns_pruner(n, s, x, calib)) for n in names]
    out = results.setdefault(s.name, {"title": s.title, "bases": {}, "rows": {}})
    for seed in range(args.bases):
        base = base_model(s, seed, cache)
        base_acc = evaluate(base, test_loader)[0]
        base_macs = count_macs(base, x)[0]
        out["bases"][str(seed)] = base_acc
        print(f"[{s.name}] base {seed}: {base_acc:.2%}", flush=True)
        tp_rows = [] if args.no_tp else [(f"tp {n}", tp_pruner(n, s, x, calib, base_macs)) for n in s.tp]
        for name, prune in rows + tp_rows:
            row = out["rows"].setdefault(name, {})
            if str(seed) in row:
                continue
            start = time.perf_counter()
            torch.manual_seed(0)
            small = prune(copy.deepcopy(base)).eval()
            prune_s = time.perf_counter() - start
            rec = {"macs": count_macs(small, x)[0] / base_macs, "pruned": evaluate(small, test_loader)[0],
                   "prune_s": prune_s}  # fmt: skip
            if has_bn(small):
                bn = copy.deepcopy(small)
                adapt_batchnorm_(bn, [b[0] for b in calib])
                rec["bn"] = evaluate(bn, test_loader)[0]
            train_loader, _ = make_loaders("mnist5k", batch_size=64, augment=True, seed=0, **s.data)
            rec["tuned"] = train(small, train_loader, test_loader, tune).final_acc
            row[str(seed)] = rec
            bn = f"bn {rec['bn']:.2%} " if "bn" in rec else ""
            print(f"[{s.name}] base {seed} {name:<32} MACs {rec['macs']:.3f} pruned {rec['pruned']:.2%} "
                  f"{bn}tuned {rec['tuned']:.2%} ({prune_s:.1f} s)", flush=True)  # fmt: skip
            save()


def summary(results: dict) -> list[str]:
    """Tables (mean and spread over bases) and the issue-15 bars."""
    lines = []
    for out in results.values():
        lines.append(f"\n== {out['title']}: base accuracy {_ms(list(out['bases'].values()))}")
        lines.append(
            f"{'criterion':<34} {'MACs':>6} {'right after':>16} {'BN re-est.':>16} {'fine-tuned':>16}"
        )
        for name, row in out["rows"].items():
            recs = list(row.values())
            bn = [r["bn"] for r in recs if "bn" in r]
            lines.append(
                f"{name:<34} {statistics.fmean(r['macs'] for r in recs):>6.3f} "
                f"{_ms([r['pruned'] for r in recs]):>16} {_ms(bn) if bn else '':>16} "
                f"{_ms([r['tuned'] for r in recs]):>16}   n={len(recs)}"
            )
    lines += bars(results)
    return lines


def _mean(results: dict, key: str, name: str, field: str) -> float:
    return 100 * statistics.fmean(r[field] for r in results[key]["rows"][name].values())


def bars(results: dict) -> list[str]:
    lines = ["\n== bars (issue 15; means over bases, pp)"]
    for key, (ref, margin) in {"lenet_w23": ("l1", 0.0), "lenet_m03": ("random", 5.0)}.items():
        if key not in results or ref not in results[key]["rows"]:
            continue
        r = _mean(results, key, ref, "pruned")
        for crit in ("hrel", "chip"):
            if crit in results[key]["rows"]:
                v = _mean(results, key, crit, "pruned")
                ok = "met" if v >= r + margin else "MISSED"
                lines.append(
                    f"{key}: {crit} right after pruning {v:.2f} % vs {ref} {r:.2f} % + {margin}: {ok}"
                )
    for key, out in results.items():
        if "hrel" not in out["rows"]:
            continue
        tuned = {n: _mean(results, key, n, "tuned") for n in out["rows"]}
        best = max(tuned, key=tuned.get)
        gap = tuned[best] - tuned["hrel"]
        ok = "met" if gap <= 0.5 else "MISSED"
        lines.append(f"{key}: hrel fine-tuned {tuned['hrel']:.2f} % vs best {best} {tuned[best]:.2f} %: "
                     f"{gap:.2f} pp behind (bar 0.5): {ok}")  # fmt: skip
    return lines


def _ms(values: list[float]) -> str:
    if not values:
        return ""
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.fmean(values):.2f} ± {100 * sd:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", default="lenet_w23,lenet_m03,resnet_m05")
    parser.add_argument("--bases", type=int, default=5, help="base-model seeds 0..N-1")
    parser.add_argument("--criteria", default=None, help="comma-separated subset (default: all registered)")
    parser.add_argument("--no-tp", action="store_true", help="skip the Torch-Pruning rows")
    parser.add_argument(
        "--tune-epochs", type=int, default=0, help="fine-tune epochs (default: 3 for LeNet-5, 1 for resnet20)"
    )
    parser.add_argument("--calib-batches", type=int, default=16, help="calibration batches of 64 digits")
    parser.add_argument("--cache", default="runs/bench/criteria_oneshot", help="base-model cache folder")
    parser.add_argument("--out", default="runs/bench/criteria_oneshot/results.json")
    parser.add_argument("--resume", action="store_true", help="keep rows already in --out")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--report", nargs="+", default=None, help="only print the tables of these results files (merged)"
    )
    args = parser.parse_args(argv)
    if args.report:
        merged: dict = {}
        for path in args.report:
            merged.update(json.loads(Path(path).read_text()))
        print("\n".join(summary(merged)))
        return 0
    set_threads(args.threads)
    print_calibration("start")
    out = Path(args.out)
    results: dict = json.loads(out.read_text()) if args.resume and out.exists() else {}

    def save() -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_json(out, results)

    table = settings()
    for key in args.settings.split(","):
        run_setting(table[key], args, results, save)
    print("\n".join(summary(results)))
    print_calibration("end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
