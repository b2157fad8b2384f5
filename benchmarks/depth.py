"""Depth compression: width-only vs depth-only vs compound at <= 0.5x MACs, triage, folding.

Parts (each < 40 min on one thread of the shared 2-core dev machine; results printed, calibration beside
every timing table; every choice on training images held out of the split, never the test split):

- ``baseline``: resnet56_cifar on mnist5k (32x32, 3 channels; 3,500 training images, 500 held out),
  ``--epochs`` in resumable parts of ``--part-epochs``; cached under ``--cache`` when finished.
- ``plan``: four models at <= 0.5x MACs — width-only (the criterion of ``WIDTH_CRITERIA`` with the best
  held-out accuracy right after pruning), depth-only (block output change), compound at the rule's point,
  and compound under a measured latency cap of width-only's latency / 1.3 (the bar as the budget).
- ``finetune --model NAME --seeds N``: the same KD fine-tune for each seed, resumable.
- ``compare``: accuracy (held-out before/after, test), MACs, params, batch-1 latency (PyTorch and ONNX
  Runtime, one thread, interleaved, fastest round) and the bars: >= 1.3x faster than width-only within
  0.5 pp of its accuracy.
- ``triage-base`` / ``triage --unit stage --inits X``: resnet20_cifar's table (initialisations x schemes).
- ``fold``: conv-BN-ReLU ResNet-18 (torchvision) folded: max output difference and measured speed-up.
- ``shrink-merge``: DepthShrinker's merge on mobilenetv2_cifar (exactness, MACs, latency).

    PYTHONPATH=src python benchmarks/depth.py --part baseline|plan|finetune|compare|... [--cache DIR]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from _calibration import print_calibration
from _depth_common import _loaders, _stop_after, _train_base, _write_json
from _depth_fold import latencies, part_fold, part_shrink_merge
from _tables import FAILURES, bar, table

import netsculpt as ns
from netsculpt.depth.compound import compound_scale
from netsculpt.measure.macs import count_macs, count_params
from netsculpt.train import DistillConfig, TrainConfig, distill, evaluate

KD = DistillConfig(temperature=4.0, alpha=0.9)


def part_baseline(args: argparse.Namespace) -> None:
    """resnet56_cifar, the teacher / base model of the comparison (see :func:`_train_base`)."""
    result, seconds, finished = _train_base(args, "resnet56_cifar", "resnet56")
    last = result.history[-1]
    print(
        f"resnet56_cifar: epoch {result.epochs_run}/{args.epochs}, held-out {last['val_acc']:.2%}, "
        f"test {last['test_acc']:.2%}, {seconds:.0f} s this part",
        flush=True,
    )
    if finished:
        print("baseline finished and saved; next: --part plan")
    else:
        print("baseline not finished: run --part baseline again to resume")


WIDTH_CRITERIA = ("l1", "fpgm", "taylor")
MODELS = ("width-only", "depth-only", "compound", "compound-latency")


def _plan_path(args: argparse.Namespace, name: str) -> Path:
    return args.cache / f"plan_{name}"


def part_plan(args: argparse.Namespace) -> None:
    """Prune the converged base four ways to <= 0.5x MACs, every choice made on held-out training
    images: width-only (the criterion with the best held-out accuracy right after pruning), depth-only,
    compound at the rule's point, and compound under a measured latency cap of width-only's / 1.3 (the
    bar as the budget). Each plan is saved (``ns.save``) for the fine-tune parts."""
    from netsculpt.depth.compound import latency_ratio

    teacher = ns.load(args.cache / "resnet56").eval()
    x = torch.randn(1, 3, 32, 32)
    _, held, _ = _loaders(args)
    base_macs = count_macs(teacher, x)[0]
    start = time.perf_counter()
    widths = {
        c: ns.prune(teacher, x, criterion=c, target=ns.Target(macs=0.5), data=held) for c in WIDTH_CRITERIA
    }
    held_acc = {c: evaluate(m, held)[0] for c, m in widths.items()}
    best = max(WIDTH_CRITERIA, key=lambda c: held_acc[c])
    print(
        "width-only criteria, held-out acc right after pruning:", {c: f"{a:.2%}" for c, a in held_acc.items()}
    )
    print(f"width-only criterion chosen on held-out images: {best}", flush=True)
    width = widths[best]
    from netsculpt.depth.api import plan_depth, remove_blocks

    depth_plan = plan_depth(teacher, x, target=ns.Target(macs=0.5), data=held)
    depth = remove_blocks(teacher, depth_plan.blocks)
    comp = compound_scale(teacher, x, target=ns.Target(macs=0.5), data=held)
    print_calibration("before width latency")
    width_lat = latency_ratio(width, x, teacher, x, runs=30)
    cap = width_lat / 1.3
    print(
        f"width-only latency {width_lat:.3f} of the unpruned model; compound latency cap {cap:.3f}",
        flush=True,
    )
    fast = compound_scale(teacher, x, target=ns.Target(macs=0.5), data=held, latency=cap)
    print_calibration("after compound-latency search")
    for c in fast.candidates:
        print("  candidate", {k: round(v, 3) for k, v in c.items()})
    plans = {
        "width-only": (width, 32, f"{best} global MACs target"),
        "depth-only": (depth, 32, "output_change blocks"),
        "compound": (
            comp.model,
            comp.resolution[-1],  # a (H, W) shape; square here (32x32 digits)
            f"rule: depth {comp.depth:.2f}, width MACs {comp.width:.2f}",
        ),
        "compound-latency": (
            fast.model,
            fast.resolution[-1],  # a (H, W) shape; square here (32x32 digits)
            f"latency cap {cap:.2f}: depth {fast.depth:.2f}, width MACs {fast.width:.2f}, "
            f"measured {fast.latency:.2f}",
        ),
    }
    summary = {}
    for name, (model, res, how) in plans.items():
        xi = torch.randn(1, 3, res, res)
        held_r = _loaders(args, res)[1]
        summary[name] = {
            "resolution": res,
            "how": how,
            "macs": count_macs(model, xi)[0] / base_macs,
            "params": count_params(model),
            "held_acc_before_ft": evaluate(model, held_r)[0],
        }
        ns.save(model, _plan_path(args, name), extra={"input_shape": [1, 3, res, res]})
        print(f"{name} ({res}x{res}, {how}): {summary[name]}", flush=True)
    summary["removed"] = {
        "depth-only": [b["name"] for b in depth_plan.blocks],
        "compound": comp.removed,
        "compound-latency": fast.removed,
    }
    summary["compound_latency_candidates"] = fast.candidates
    summary["width_criteria_held_acc"] = held_acc
    _write_json(args.out / "depth_v2_plan.json", summary)
    print(f"planned in {time.perf_counter() - start:.0f} s")


def part_finetune(args: argparse.Namespace) -> None:
    """KD fine-tune of one plan for every seed (resumable per epoch: ``--part-epochs`` per invocation);
    held-out accuracy is recorded every epoch, the test split only reported."""
    import json

    teacher = ns.load(args.cache / "resnet56").eval()
    info = json.loads((args.out / "depth_v2_plan.json").read_text())[args.model]
    res = info["resolution"]
    for seed in [args.seed] if args.seed is not None else range(args.seeds):
        out = args.out / f"depth_v2_ft_{args.model}_s{seed}.json"  # one file per seed: parts may run at once
        if out.exists():
            continue
        train_l, held, test_l = _loaders(args, res, augment=True, order_seed=seed)
        torch.manual_seed(seed)
        student = ns.load(_plan_path(args, args.model))
        config = TrainConfig(epochs=args.ft_epochs, lr=0.02, seed=seed, augment=True, augment_shift=2)
        start = time.perf_counter()
        result = distill(
            student,
            teacher,
            train_l,
            test_l,
            config,
            KD,
            out_dir=args.cache / f"ft_{args.model}_s{seed}",
            resume=True,
            val_loader=held,
            on_epoch_end=_stop_after(args.part_epochs),
        )
        if result.epochs_run < args.ft_epochs:
            print(f"{args.model} seed {seed}: epoch {result.epochs_run}; run again to resume")
            return
        last = result.history[-1]
        _write_json(out, {"seed": seed, "held_acc": last["val_acc"], "test_acc": last["test_acc"]})
        print(
            f"{args.model} seed {seed}: held-out {last['val_acc']:.2%}, test {last['test_acc']:.2%} "
            f"({time.perf_counter() - start:.0f} s)",
            flush=True,
        )


def _seed_cell(acc: list[float]) -> str:
    """Mean ± population spread, then every seed's value (3 draws: the spread alone hides too much)."""
    each = "/".join(f"{a * 100:.1f}" for a in acc)
    return f"{statistics.mean(acc):.2%} ± {statistics.pstdev(acc):.2%} ({each})"


def part_compare(args: argparse.Namespace) -> None:
    """The table: fine-tuned accuracy (per seed, mean ± spread), MACs, params and batch-1 latency measured
    side by side; models without a finished fine-tune are left out."""
    import json

    plan = json.loads((args.out / "depth_v2_plan.json").read_text())
    teacher = ns.load(args.cache / "resnet56").eval()
    base_acc = evaluate(teacher, _loaders(args)[2])[0]
    runs = {
        n: [json.loads(f.read_text()) for f in sorted(args.out.glob(f"depth_v2_ft_{n}_s*.json"))]
        for n in MODELS
    }
    names = [n for n in MODELS if runs[n]]
    if "width-only" not in names:
        raise SystemExit("no width-only fine-tune finished: run --part finetune --model width-only first")
    shapes = {name: (ns.load(_plan_path(args, name)).eval(), plan[name]["resolution"]) for name in names}
    accs = {n: {r["seed"]: r["test_acc"] for r in runs[n]} for n in names}
    helds = {n: [r["held_acc"] for r in runs[n]] for n in names}
    print_calibration("before latency")
    lat = latencies({"unpruned": (teacher, 32), **shapes})
    print_calibration("after latency")
    rows = [
        (
            "unpruned",
            "-",
            f"{base_acc:.2%}",
            "1.000",
            count_params(teacher),
            *(f"{v:.2f}" for v in lat["unpruned"]),
        )
    ]
    for name, (model, res) in shapes.items():
        rows.append(
            (
                f"{name} ({res}x{res})",
                f"{plan[name]['held_acc_before_ft']:.2%} -> {statistics.mean(helds[name]):.2%}",
                _seed_cell([accs[name][s] for s in sorted(accs[name])]),
                f"{plan[name]['macs']:.3f}",
                count_params(model),
                f"{lat[name][0]:.2f}",
                f"{lat[name][1]:.2f}",
            )
        )
    table(
        f"resnet56_cifar on mnist5k, <= 0.5x MACs, KD {args.ft_epochs} epochs, seeds "
        f"{sorted(accs['width-only'])} (test acc: mean ± spread (each seed))",
        ("model", "held-out before -> after ft", "test acc", "MACs", "params", "torch ms", "ORT ms"),
        rows,
    )
    w_acc = statistics.mean(accs["width-only"].values())
    summary = {"latency_ms": lat, "test_acc": accs, "held_acc": helds, "unpruned_test_acc": base_acc}
    for name in names[1:]:
        speed_t = lat["width-only"][0] / lat[name][0]
        speed_o = lat["width-only"][1] / lat[name][1]
        gap = (w_acc - statistics.mean(accs[name].values())) * 100
        paired = {
            s: (accs["width-only"][s] - a) * 100 for s, a in accs[name].items() if s in accs["width-only"]
        }
        summary[name] = {
            "speedup_torch": speed_t,
            "speedup_ort": speed_o,
            "pp_below_width": gap,
            "pp_below_width_per_seed": paired,
        }
        print(
            bar(
                min(speed_t, speed_o) >= 1.3,
                f"{name}: {speed_t:.2f}x (torch), {speed_o:.2f}x (ORT) faster than width-only "
                f"(bar 1.3x in both runtimes)",
            )
        )
        each = ", ".join(f"seed {s} {g:+.1f}" for s, g in sorted(paired.items()))
        print(
            bar(gap <= 0.5, f"{name}: accuracy {gap:+.2f} pp below width-only, mean (bar <= 0.5 pp; {each})")
        )
    _write_json(args.out / "depth_v2_compare.json", summary)


def part_triage_base(args: argparse.Namespace) -> None:
    """resnet20_cifar for the triage table (see :func:`_train_base`)."""
    result, _, _ = _train_base(args, "resnet20_cifar", "resnet20")
    last = result.history[-1]
    print(f"resnet20_cifar: epoch {result.epochs_run}/{args.epochs}, held-out {last['val_acc']:.2%}")


def part_triage(args: argparse.Namespace) -> None:
    """The paper's table for resnet20: every unit collapsed under each initialisation x training scheme.
    One invocation per ``--inits`` value keeps each part short; rows accumulate in the cache and the
    table, plot and report page are rewritten from all rows so far."""
    import json
    from dataclasses import asdict

    from netsculpt.depth.triage import SCHEMES, TriageConfig, TriageRow, triage, write_triage

    train_l, held, _ = _loaders(args, augment=True)
    model = ns.load(args.cache / "resnet20").eval()
    rows_path = args.cache / f"triage_{args.unit}_rows.json"
    done = [TriageRow(**r) for r in json.loads(rows_path.read_text())] if rows_path.exists() else []
    start = time.perf_counter()
    inits = tuple(i for i in args.inits.split(",") if i not in {r.init for r in done})
    if inits:
        config = TriageConfig(unit=args.unit, inits=inits, schemes=SCHEMES, steps=args.triage_steps)
        done += triage(model, torch.randn(1, 3, 32, 32), train_l, held, config)
        _write_json(rows_path, [asdict(r) for r in done])
    paths = write_triage(done, args.out / f"depth_triage_resnet20_{args.unit}")
    table(
        f"resnet20_cifar triage by {args.unit} (held-out acc after collapse + {args.triage_steps} steps; "
        f"{time.perf_counter() - start:.0f} s this part)",
        ("unit", "init", "train", "held-out acc", "drop (pp)"),
        [(r.unit, r.init, r.scheme, f"{r.accuracy:.2%}", f"{r.drop * 100:.1f}") for r in done],
    )
    print("written:", *paths)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument(
        "--part",
        choices=["baseline", "plan", "finetune", "compare", "triage-base", "triage", "fold", "shrink-merge"],
        required=True,
    )
    p.add_argument("--unit", choices=["block", "stage"], default="stage")
    p.add_argument("--inits", default="random,first,distilled")
    p.add_argument("--model", choices=MODELS, default="width-only")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    p.add_argument("--cache", type=Path, default=Path("benchmarks/results/depth_cache/v2"))
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--val-size", type=int, default=500)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--part-epochs", type=int, default=3)
    p.add_argument("--ft-epochs", type=int, default=1)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--seed", type=int, default=None, help="finetune: only this seed")
    p.add_argument("--triage-steps", type=int, default=30)
    p.add_argument("--fold-size", type=int, default=224, help="fold: input side")
    p.add_argument("--rounds", type=int, default=5, help="fold: interleaved latency rounds")
    args = p.parse_args()
    torch.set_num_threads(1)
    print_calibration(args.part)
    parts = {
        "baseline": part_baseline,
        "plan": part_plan,
        "finetune": part_finetune,
        "compare": part_compare,
        "triage-base": part_triage_base,
        "triage": part_triage,
        "fold": part_fold,
        "shrink-merge": part_shrink_merge,
    }
    parts[args.part](args)
    if FAILURES:
        print("missed bars:", *FAILURES, sep="\n  ")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
