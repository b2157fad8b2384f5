"""N2N learning (issue 18 section 3) vs uniform widths vs AMC, at the same MACs, on resnet20_cifar / mnist5k.

    PYTHONPATH=src python benchmarks/n2n.py --part run --seed 0      # one seed (resumable: rerun continues)
    PYTHONPATH=src python benchmarks/n2n.py --part table

The teacher is benchmarks/automation.py's cached resnet20_cifar (4 epochs on mnist5k at 32x32, trained
without the 500 held-out training digits). N2N searches at ``--target`` MACs: ``--remove-episodes``
students of the block-removal policy, then ``--shrink-episodes`` of the shrink policy, each distilled for
``--kd-steps`` training batches and scored on the 500 held-out *training* digits. Uniform widths and AMC
(60 episodes, cheap scorer) are then fitted to the MACs N2N's student actually reached, so all three are
compared at the same cost; the three students get the same KD fine-tune (``finetune`` preset,
``--finetune-epochs``) and are scored once on the test split. Search wall times are printed beside the
CPU calibration. Results: benchmarks/results/n2n.json (one record per seed), the table from ``--part table``.

``--metric params`` budgets parameters instead (the resnet56 bar: ``--model resnet56_cifar --metric params
--target 0.2``, >= 5x fewer params within 1.5 pp of the teacher); uniform widths are then fitted to the
params N2N reached, and ``--baselines uniform`` skips AMC. Every fine-tune checkpoints per epoch next to the
search, so a rerun of an interrupted part continues where it stopped.

Students are filled up to the budget (``N2NConfig.fill``; results in n2n_fill.json, search dirs ``*fill_*``);
``--no-fill`` runs the paper's students as sampled (the earlier runs, n2n.json).
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
from automation import DATA, VAL_SIZE, resnet_baseline

import netsculpt as ns
from netsculpt.importance import get_criterion
from netsculpt.search import CONFIGS, SearchSpace, apply_search_plan, finetune_pruned, search_widths
from netsculpt.search.holdout import holdout_loaders
from netsculpt.train import TrainConfig, evaluate

RESULTS = Path("benchmarks/results")
SETTINGS = (
    "remove_episodes",
    "shrink_episodes",
    "rollouts",
    "kd_steps",
    "finetune_epochs",
    "teacher_epochs",
    "fill",
)


def run_part(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    calibration = print_calibration("start")
    train_loader, held, test_loader = holdout_loaders(
        "mnist5k", val_size=VAL_SIZE, batch_size=64, eval_batch_size=125, **DATA
    )
    base = resnet_baseline(Path(args.cache), args.teacher_epochs, train_loader, test_loader, args.model)
    if args.part == "teacher":
        print(f"{args.model} teacher: {evaluate(base, test_loader)[0]:.2%} test", flush=True)
        return
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    base_acc = evaluate(base, test_loader)[0]
    base_cost = ns.measure(base, x, latency=False)
    graph = ns.trace(base, x)
    common = {"eval_batches": 2, "full_batches": 4, "seed": args.seed}
    n2n_config = CONFIGS["n2n"](
        remove_episodes=args.remove_episodes,
        shrink_episodes=args.shrink_episodes,
        rollouts=args.rollouts,
        kd_steps=args.kd_steps,
        policy=args.policy,
        fill=args.fill,
        **common,
    )
    short = args.model.removesuffix("_cifar")
    tag = f"{short}_" if short != "resnet20" else ""
    tag += "transfer_" if args.policy else ""
    tag += f"{args.metric}{args.target}_" if args.metric != "macs" else ""
    tag += "fill_" if args.fill else ""  # searches before students were filled to the budget keep their dirs
    out = Path(args.cache) / f"n2n_{tag}seed{args.seed}"
    start = time.perf_counter()
    result = search_widths(
        base,
        x,
        "n2n",
        f"{args.metric}={args.target}",
        train_loader,
        held,
        n2n_config,
        graph=graph,
        out_dir=out,
        resume=True,
    )
    seconds = {"n2n": _search_seconds(out, time.perf_counter() - start)}
    history = result.history
    picked = history["picked"]
    print(
        f"n2n: {seconds['n2n']:.0f} s, {len(history['students'])} students (+ the policies' own); teacher "
        f"held-out {history['teacher_accuracy']:.2%}; stage 1 removes {history['stage1_removed']}",
        flush=True,
    )
    print(
        f"  picked student {picked['episode']}: removes {picked['removed']}, widths {picked['widths']}, "
        f"MACs {picked['cost']['macs']:.3f}, params {picked['cost']['params']:.3f}, held-out after "
        f"{args.kd_steps} KD steps {picked['accuracy']:.2%}, reward {picked['reward']:.4f}",
        flush=True,
    )
    reached = float(picked["cost"][args.metric])
    students = {"n2n": apply_search_plan(base, result.plan, x)}
    scores = get_criterion("l1").score(base, graph, None)
    space = SearchSpace(base, x, graph, scores)
    baselines = {b.strip() for b in args.baselines.split(",") if b.strip()}
    if "uniform" in baselines:
        fitted = space.fit(np.ones(len(space)), args.metric, reached)
        students["uniform"] = ns.apply_plan(base, space.plan(fitted), x)
    if "budget" in baselines:  # uniform widths at the target itself: can the bar be met by thinning evenly?
        fitted = space.fit(np.ones(len(space)), args.metric, args.target)
        students["budget"] = ns.apply_plan(base, space.plan(fitted), x)
    if "amc" in baselines:
        start = time.perf_counter()
        amc = search_widths(
            base,
            x,
            "amc",
            f"{args.metric}={reached:.4f}",
            train_loader,
            held,
            CONFIGS["amc"](episodes=60, warmup=15, **common),
            graph=graph,
        )
        seconds["amc"] = time.perf_counter() - start
        print(f"amc at {reached:.3f} {args.metric}: {seconds['amc']:.0f} s", flush=True)
        students["amc"] = ns.apply_plan(base, amc.plan, x, graph=graph)
    tc = TrainConfig.preset("finetune", epochs=args.finetune_epochs, seed=args.seed)
    ft_train, _, _ = holdout_loaders(
        "mnist5k",
        val_size=VAL_SIZE,
        batch_size=tc.batch_size,
        augment=tc.augment,
        order_seed=args.seed,  # each seed its own batch order, same split
        **DATA,
    )
    record = {
        "model": args.model,
        "transfer": args.policy,
        "seed": args.seed,
        "metric": args.metric,
        "target": args.target,
        "base_acc": base_acc,
        "base_macs": base_cost.macs,
        "base_params": base_cost.params,
        "rows": {},
        "search_s": seconds,
        "picked": picked,
        "stage1_removed": history["stage1_removed"],
        "students": len(history["students"]),
        "settings": {k: getattr(args, k) for k in SETTINGS},
        "calibration": [str(calibration)],
    }
    for label, model in students.items():
        cost = ns.measure(model, x, latency=False)
        before = evaluate(model, test_loader)[0]
        finetune_pruned(
            model, base, ft_train, test_loader, tc, out_dir=out / f"finetune_{label}", resume=True
        )
        acc = evaluate(model, test_loader)[0]
        record["rows"][label] = {"acc": acc, "before": before, "macs": cost.macs, "params": cost.params}
        print(
            f"  {label}: {acc:.2%} after {args.finetune_epochs} KD epochs ({before:.2%} before), "
            f"{cost.macs / base_cost.macs:.3f} MACs, {cost.params / base_cost.params:.3f} params",
            flush=True,
        )
        _save(record, args.results)  # after every student, so a run cut short keeps what it finished
    record["calibration"].append(str(print_calibration("end")))
    _save(record, args.results)


def _search_seconds(out: Path, elapsed: float) -> float:
    """The search's wall time from the process that finished it (a rerun that only resumes a finished
    search to run more baselines would otherwise record seconds)."""
    path = out / "bench_search_s.json"
    if path.exists():
        return float(json.loads(path.read_text()))
    path.write_text(json.dumps(elapsed))
    return elapsed


def _save(record: dict, name: str) -> None:
    from netsculpt.fileio import write_json

    path = RESULTS / name
    data = json.loads(path.read_text()) if path.exists() else []
    old = {"model": "resnet20_cifar", "metric": "macs"}  # records written before these keys existed
    same = ("seed", "target", "model", "transfer", "metric")
    data = [r for r in data if any(r.get(k, old.get(k)) != record[k] for k in same)]
    write_json(path, [*data, record])


def table_part(args: argparse.Namespace) -> None:
    runs = json.loads((RESULTS / args.results).read_text())
    kind = lambda r: (r.get("model", "resnet20_cifar"), r.get("metric", "macs"), r["target"],  # noqa: E731
                      bool(r.get("transfer")))  # fmt: skip
    for model, metric, target, transfer in sorted({kind(r) for r in runs}):
        group = [r for r in runs if kind(r) == (model, metric, target, transfer)]
        rows = []
        labels = [k for k in ("n2n", "uniform", "amc", "budget") if all(k in r["rows"] for r in group)]
        for label in labels:
            accs = [r["rows"][label]["acc"] for r in group]
            macs = [r["rows"][label]["macs"] / r["base_macs"] for r in group]
            params = [r["rows"][label]["params"] / r["base_params"] for r in group]
            before = [r["rows"][label]["before"] for r in group]
            rows.append(
                (
                    label,
                    f"{np.mean(accs):.2%}",
                    " ".join(f"{a:.2%}" for a in accs),
                    f"{np.mean(before):.2%}",
                    f"{np.mean(macs):.3f}",
                    f"{np.mean(params):.3f}",
                )
            )
        s = group[0]["settings"]
        unit = "MACs" if metric == "macs" else "params"
        table(
            f"{model} on mnist5k, N2N target {target}x {unit}{' (policy transferred)' if transfer else ''}"
            f"{' (students filled to the budget)' if s.get('fill') else ''}, "
            f"{' and '.join(k for k in labels[1:] if k != 'budget') or 'no baselines'} at N2N's {unit}"
            f"{', budget = uniform at the target' if 'budget' in labels else ''}; KD "
            f"fine-tune {s['finetune_epochs']} epochs; {len(group)} seed(s); "
            f"teacher {group[0]['base_acc']:.2%} ({s.get('teacher_epochs', 4)} epochs)",
            ("student", "mean test acc", "per seed", "before fine-tune", "MACs", "params"),
            rows,
        )
        for r in group:
            amc = f"AMC {r['search_s']['amc']:.0f} s; " if "amc" in r["search_s"] else ""
            print(
                f"  seed {r['seed']}: N2N search {r['search_s']['n2n']:.0f} s ({r['students']} students, "
                f"{s['kd_steps']} KD steps each; best at student {r['picked']['episode']}); {amc}N2N removed "
                f"{r['picked']['removed']}; calibration {' | '.join(r['calibration'])}"
            )
        if metric == "params":  # the bar: >= 5x fewer params within 1.5 pp of the teacher
            for r in group:
                fewer = r["base_params"] / r["rows"]["n2n"]["params"]
                drop = (r["base_acc"] - r["rows"]["n2n"]["acc"]) * 100
                print(bar(fewer >= 5 and drop <= 1.5, f"seed {r['seed']}: N2N student {fewer:.2f}x fewer "
                          f"params, {drop:+.2f} pp below the teacher (bar: >= 5x, <= 1.5 pp)"))  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("teacher", "run", "table"), required=True)
    parser.add_argument("--model", default="resnet20_cifar", choices=("resnet20_cifar", "resnet56_cifar"))
    parser.add_argument("--teacher-epochs", type=int, default=4)
    parser.add_argument("--policy", default=None, help="warm-start from this N2N search dir (transfer)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--target", type=float, default=0.5)
    parser.add_argument("--remove-episodes", type=int, default=20)
    parser.add_argument("--shrink-episodes", type=int, default=30)
    parser.add_argument("--rollouts", type=int, default=5)
    parser.add_argument("--kd-steps", type=int, default=20)
    parser.add_argument("--finetune-epochs", type=int, default=3)
    parser.add_argument("--metric", default="macs", choices=("macs", "params"))
    parser.add_argument(
        "--baselines",
        default="uniform,amc",
        help="comma list of uniform, amc, budget (uniform at --target) or empty",
    )
    parser.add_argument("--cache", default="runs/bench/search")
    parser.add_argument(
        "--no-fill",
        dest="fill",
        action="store_false",
        help="the paper's students: widths as sampled, not filled up to the budget (the runs in n2n.json)",
    )
    parser.add_argument("--results", default=None, help="JSON under benchmarks/results (n2n_fill.json)")
    args = parser.parse_args(argv)
    args.results = args.results or ("n2n_fill.json" if args.fill else "n2n.json")
    (table_part if args.part == "table" else run_part)(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
