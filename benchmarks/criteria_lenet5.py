"""Every criterion on LeNet-5 / mnist5k, pruned to the HRel paper's conv widths (20, 50 -> 2, 3).

The baseline is trained with the ``lenet5_mnist5k`` preset (cached in ``--cache``, so reruns skip it).
Each criterion scores channels from the same calibration batches (16 x 64 training digits, no
augmentation), ``widths_plan`` keeps the best 2 and 3 filters, and the pruned net is fine-tuned with one
fixed recipe, once per seed (``--seeds``; a 2-filter conv makes single runs move by a point). The bar
(issue 4): with ``hrel`` the mean accuracy loss after fine-tuning is at most 0.6 percentage points on the
1,000 test digits (the paper reports 0.52 on full MNIST). Exits 1 if missed.

One seeded baseline is one draw: the preset ends anywhere from 98.3 % to 99.0 % with the seed (and on
another CPU the same seed moved 0.5 pp), and a loss measured from a weak teacher flatters. So after the
table the bar criterion is run again from the baselines of seeds 1..``--teachers``-1 (each cached, each
its own teacher), and the verdict is the mean loss over all teachers.

The fine-tune recipe: distillation from the baseline (T = 4, alpha = 0.9, in-batch mixup Beta(1, 1)),
SGD lr 0.05 cosine, no weight decay, gradient norm clipped at 1, 200 epochs, random shifts of at most 1
pixel. Without the clip a seed now and then collapses (a 2-filter conv loses a channel to a dead ReLU);
mixup only helps with the long schedule. The recipe was chosen on held-out training digits over three
teachers, never on the test digits: ``benchmarks/lenet5_recipe_val.py`` and docs/criteria.md.

About 140 s per fine-tune on one thread, so the full run (10 criteria + 4 more teachers, 5 seeds each)
takes about 2.7 hours on one core; split it over processes with ``--criteria`` and ``--teacher-seeds``
(``--criteria ''`` skips the table and only runs the listed teachers):

    PYTHONPATH=src python benchmarks/criteria_lenet5.py [--seeds 5] [--teachers 5] [--criteria hrel]
    PYTHONPATH=src python benchmarks/criteria_lenet5.py --criteria '' --teacher-seeds 3,4
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
from pathlib import Path

from _calibration import print_calibration
from _criteria_bench import Row, cached_baseline, fine_tuner, print_table, run_row, set_threads

import netsculpt as ns
from netsculpt.allocate import widths_plan
from netsculpt.data import make_loaders
from netsculpt.importance import get_criterion
from netsculpt.measure import count_macs, count_params
from netsculpt.train import DistillConfig, TrainConfig, evaluate, train

BAR_CRITERION = "hrel"
BAR_PP = 0.6  # issue 4: hrel at widths (2, 3) loses at most 0.6 pp after fine-tuning
WIDTHS = {"conv1": 2, "conv2": 3}  # the HRel paper's LeNet-5 result: 20, 50 -> 2, 3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=200, help="fine-tune epochs (same for every criterion)")
    parser.add_argument("--lr", type=float, default=0.05, help="fine-tune peak learning rate")
    parser.add_argument("--shift", type=int, default=1, help="fine-tune augmentation: largest shift, pixels")
    parser.add_argument("--temperature", type=float, default=4.0, help="distillation temperature")
    parser.add_argument("--mixup", type=float, default=1.0, help="in-batch mixup Beta concentration (0: off)")
    parser.add_argument("--clip", type=float, default=1.0, help="fine-tune gradient-norm clip (0: none)")
    parser.add_argument("--seeds", type=int, default=5, help="fine-tune seeds per criterion (mean is shown)")
    parser.add_argument("--no-kd", action="store_true", help="fine-tune with cross-entropy only")
    parser.add_argument("--criteria", default=None, help="comma-separated subset (default: all)")
    parser.add_argument(
        "--teachers", type=int, default=5, help="baselines (seeds 0..N-1) the bar criterion runs from"
    )
    parser.add_argument(
        "--teacher-seeds",
        default=None,
        help="comma-separated baseline seeds instead of --teachers (to split the verdict over processes)",
    )
    parser.add_argument("--calib-batches", type=int, default=16)
    parser.add_argument("--cache", default="runs/bench/criteria_lenet5", help="baseline cache folder")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    set_threads(args.threads)
    print_calibration("start")

    preset = TrainConfig.preset("lenet5_mnist5k")

    def loaders(seed=preset.seed, shift=None):
        return make_loaders(
            "mnist5k", batch_size=preset.batch_size, augment=preset.augment, seed=seed, shift=shift
        )

    test_loader = loaders()[1]
    calib_loader, _ = make_loaders("mnist5k", batch_size=64, augment=False, seed=1)
    # a list, not the loader: a loader's shuffle generator advances, so every criterion would see other data
    calib = list(itertools.islice(calib_loader, args.calib_batches))
    x = next(iter(test_loader))[0][:1]

    def fitter(seed):
        return lambda model: train(model, loaders(seed)[0], test_loader, preset.replace(seed=seed))

    def baseline(seed):
        name = "baseline.safetensors" if seed == preset.seed else f"baseline_seed{seed}.safetensors"
        return cached_baseline(Path(args.cache) / name, lambda: ns.create_model("lenet5"), fitter(seed), seed)

    base, cached = baseline(preset.seed)
    base.eval()
    base_acc = evaluate(base, test_loader)[0]
    base_macs, base_params = count_macs(base, x)[0], count_params(base)
    print(f"baseline {'loaded from' if cached else 'trained and saved to'} {args.cache}: {base_acc:.2%}")
    tune = preset.replace(
        epochs=args.epochs, lr=args.lr, warmup_epochs=0, weight_decay=0.0, label_smoothing=0.0,
        augment_shift=args.shift, grad_clip=args.clip or None,
    )  # fmt: skip
    kd = DistillConfig(temperature=args.temperature, alpha=0.9, mixup=args.mixup)

    def tuner(teacher):
        return fine_tuner(
            lambda seed: loaders(seed, args.shift), tune, teacher=None if args.no_kd else teacher, kd=kd
        )

    how = (
        "cross-entropy"
        if args.no_kd
        else f"distillation from the baseline (T={args.temperature}, alpha=0.9, mixup {args.mixup})"
    )
    print(
        f"fine-tune: {args.epochs} epochs, lr {args.lr}, cosine, no weight decay, shifts <= {args.shift} px, "
        f"batch {tune.batch_size}, grad clip {args.clip}, {how}, seeds 0..{args.seeds - 1}"
    )

    def pruner(teacher, name):
        graph = ns.trace(teacher, x)

        def prune(model):
            crit = get_criterion(name)
            if hasattr(crit, "calib_batches"):
                crit.calib_batches = args.calib_batches
            scores = crit.score(model, graph, calib)
            return ns.apply_plan(model, widths_plan(graph, scores, WIDTHS), x, graph=graph)

        return prune

    def measure(m):
        return count_params(m), count_macs(m, x)[0]

    names = [n for n in args.criteria.split(",") if n] if args.criteria is not None else ns.list_criteria()
    rows: list[Row] = []
    for name in names:
        rows.append(run_row(name, base, pruner(base, name), measure, test_loader, tuner(base), args.seeds))
        print_table("lenet5 on mnist5k, conv widths (2, 3)", base_acc, base_params, base_macs, rows[-1:])
    if rows:
        title = "lenet5 on mnist5k, conv widths (2, 3): all criteria"
        print_table(title, base_acc, base_params, base_macs, rows)
    print_calibration("end")
    seeds = (
        [int(s) for s in args.teacher_seeds.split(",")] if args.teacher_seeds else list(range(args.teachers))
    )
    if BAR_CRITERION not in names and not args.teacher_seeds:
        return 0
    runs = []
    for seed in seeds:
        if seed == preset.seed and BAR_CRITERION in names:
            runs.append((seed, base_acc, next(r for r in rows if r.name == BAR_CRITERION)))
            continue
        teacher = baseline(seed)[0].eval()
        prune = pruner(teacher, BAR_CRITERION)
        row = run_row(
            f"{BAR_CRITERION} from seed {seed}",
            teacher,
            prune,
            measure,
            test_loader,
            tuner(teacher),
            args.seeds,
        )
        runs.append((seed, evaluate(teacher, test_loader)[0], row))
        print(f"teacher seed {seed} ({runs[-1][1]:.2%}): {row.acc_tuned:.2%} after fine-tuning", flush=True)
    print(f"\n== {BAR_CRITERION} from each teacher (baseline seed), {args.seeds} fine-tune seeds each")
    print(f"{'teacher':<8} {'teacher acc':>11} {'pruned+tuned':>13} {'loss pp':>8}  per seed")
    for seed, acc, row in runs:
        print(
            f"{seed:<8} {acc:>11.2%} {row.acc_tuned:>13.2%} {100 * (acc - row.acc_tuned):>8.2f}  "
            + " ".join(f"{a:.1%}" for a in row.tuned)
        )
    losses = [100 * (acc - row.acc_tuned) for _, acc, row in runs]
    loss_pp = statistics.fmean(losses)
    verdict = "PASS" if loss_pp <= BAR_PP else "FAIL"
    print(
        f"{verdict}: {BAR_CRITERION} loses {loss_pp:.2f} pp on average over {len(runs)} teacher(s) "
        f"(range {min(losses):.2f} to {max(losses):.2f}; bar {BAR_PP} pp)"
    )
    return 0 if loss_pp <= BAR_PP else 1


if __name__ == "__main__":
    sys.exit(main())
