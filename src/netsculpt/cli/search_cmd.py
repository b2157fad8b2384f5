"""`netsculpt search MODEL --method M --target-macs 0.5 --data NAME --out DIR`: search widths, prune.

Candidates are scored on ``--val-size`` images held out of the training split (the test split is kept
for the final numbers). DIR receives the plan(s), the search history (``search.json`` plus
``front.json`` / ``trajectory.json`` / ...), plots, the resumable state and the pruned model (``model``),
fine-tuned by distillation from the original when ``--finetune-epochs`` is given.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from rich.console import Console
from rich.table import Table

from netsculpt.cli.common import add_model_args, check_fits_data, example, load_model
from netsculpt.cli.depth_cmd import add_val_size_arg
from netsculpt.cli.prune_cmd import add_ignored_arg, parse_round_to

METHODS = ("sensitivity", "greedy", "genetic", "nsga2", "amc", "nao", "n2n")


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def register(sub: argparse._SubParsersAction) -> None:
    from netsculpt.cli.train_cmd import add_data_args

    p = sub.add_parser(
        "search",
        help="search per-layer widths (sensitivity, greedy, genetic, nsga2, amc, nao; n2n also removes "
        "blocks) and prune",
    )
    add_model_args(p)
    add_data_args(p, task=True, batch="64; 16 with --task")
    p.add_argument("--method", choices=METHODS, default="genetic", help="search method (docs/search.md)")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument(
        "--target-macs", type=float, nargs="+", help="keep this fraction of MACs (several: greedy/nsga2)"
    )
    how.add_argument("--target-params", type=float, nargs="+", help="keep this fraction of parameters")
    how.add_argument(
        "--target-latency", type=float, nargs="+", help="keep this fraction of predicted latency"
    )
    p.add_argument("--criterion", default=None, help="which channels a width keeps (default l1)")
    add_ignored_arg(p)
    p.add_argument(
        "--metric", choices=["loss", "accuracy"], default=None, help="what candidates are judged by"
    )
    add_val_size_arg(p, "training images held out to score candidates")
    p.add_argument("--eval-batch-size", type=int, default=128, help="batch size of the held-out batches")
    p.add_argument("--eval-batches", type=int, default=None, help="held-out batches per cheap score")
    p.add_argument("--full-batches", type=int, default=None, help="held-out batches per full score")
    p.add_argument("--adapt-bn-batches", type=int, default=None, help="re-estimate BN on N training batches")
    p.add_argument("--min-ratio", type=float, default=None, help="each group keeps at least this fraction")
    p.add_argument(
        "--round-to",
        type=parse_round_to,
        default=None,
        help="width rounding as prune's: N (multiples of N), hw or auto (each group's hw grid of widths, "
        "priced on --latency-runtime); default 1, exact counts (SearchConfig's default)",
    )
    p.add_argument(
        "--ratios", type=_floats, default=None, help="sensitivity ratios, e.g. 0.1,0.3,0.5,0.7,0.9"
    )
    p.add_argument(
        "--step",
        type=float,
        default=None,
        help="greedy: fraction of a group removed per step; nao: embedding step",
    )
    p.add_argument("--pop-size", type=int, default=None, help="genetic/nsga2 population")
    p.add_argument("--generations", type=int, default=None, help="genetic/nsga2 generations")
    p.add_argument("--elite", type=int, default=None, help="genetic: members scored on the full batches")
    p.add_argument("--episodes", type=int, default=None, help="amc: episodes (random warm-up included)")
    p.add_argument("--warmup", type=int, default=None, help="amc: random episodes before learning")
    p.add_argument("--policy", default=None, help="amc/n2n: warm-start from a saved policy folder")
    p.add_argument("--remove-episodes", type=int, default=None, help="n2n: students of the removal stage")
    p.add_argument("--shrink-episodes", type=int, default=None, help="n2n: students of the shrink stage")
    p.add_argument("--rollouts", type=int, default=None, help="n2n: students per policy update")
    p.add_argument("--kd-steps", type=int, default=None, help="n2n: distillation batches per student")
    p.add_argument(
        "--predictor", choices=["gcn", "mlp", "none"], default=None,
        help="genetic/nsga2/amc/n2n: screen proposals with a predictor trained online (docs/search.md)",
    )  # fmt: skip
    p.add_argument("--predictor-min", type=int, default=None, help="candidates scored before screening")
    p.add_argument(
        "--predictor-file", default=None,
        help="warm start: a predictor an earlier search of this model saved (DIR/predictor)",
    )  # fmt: skip
    p.add_argument("--screen-keep", type=float, default=None, help="fraction of screened proposals scored")
    p.add_argument("--screen-pool", type=int, default=None, help="screened proposals per generation / pop")
    p.add_argument(
        "--screen-trust", type=float, default=None,
        help="Kendall τ the predictor must show on new candidates before it may reject any (-1: no gate)",
    )  # fmt: skip
    p.add_argument("--screen-trust-rounds", type=int, default=None, help="rounds whose mean τ the gate reads")
    p.add_argument("--rounds", type=int, default=None, help="nao: optimisation rounds")
    p.add_argument("--init-size", type=int, default=None, help="nao: candidates scored before round 1")
    p.add_argument("--top", type=int, default=None, help="nao: best candidates moved per round")
    p.add_argument(
        "--finalists", type=int, default=None,
        help="genetic / nao: distil the N best and uniform briefly, keep the best after (0: best full score)",
    )  # fmt: skip
    p.add_argument("--final-kd-steps", type=int, default=None, help="genetic / nao: batches per finalist")
    p.add_argument(
        "--latency-runtime", choices=["torch", "compile", "onnxruntime", "openvino"], default=None,
        help="runtime whose per-layer table prices --target-latency and hw / auto widths (default: torch)",
    )  # fmt: skip
    p.add_argument(
        "--latency-calibration", type=int, default=None,
        help="random pruned variants measured to fit the latency table's scale too (default 0: offset only)",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=None, help="search seed (default: 0)")
    p.add_argument("--workers", type=int, default=0, help="local worker processes (0: this process)")
    p.add_argument("--ray-address", default=None, help="score candidates on this Ray cluster (e.g. auto)")
    p.add_argument("--resume", action="store_true", help="continue the search (and fine-tune) saved in --out")
    p.add_argument("--finetune-epochs", type=int, default=0, help="fine-tune the result this many epochs")
    p.add_argument(
        "--finetune-lr",
        type=float,
        default=None,
        help="fine-tune learning rate (default: the finetune preset's)",
    )
    p.add_argument("--no-distill", action="store_true", help="fine-tune on labels only (no teacher)")
    p.add_argument("--out", required=True, help="output directory")
    p.set_defaults(func=run)


def _config(args: argparse.Namespace):
    from netsculpt.search.config import CONFIGS

    cls = CONFIGS[args.method]
    names = {f.name for f in dataclasses.fields(cls)}
    given = {k: v for k, v in vars(args).items() if k in names and v is not None}
    return cls(**given)


def run(args: argparse.Namespace) -> int:
    from netsculpt.cli.task_data import dense_data, is_dense
    from netsculpt.cli.train_cmd import data_defaults
    from netsculpt.io import save
    from netsculpt.search import apply_search_plan, finetune_pruned, search_widths
    from netsculpt.search.holdout import default_val_size, holdout_loaders
    from netsculpt.tasks.metrics import metric_label
    from netsculpt.train import TrainConfig, evaluate

    dense = dense_data(args, criterion=args.criterion) if is_dense(args, args.criterion) else None
    if dense is None:
        data_defaults(args)
    model, shape = load_model(args)
    model.eval()
    x = example(shape)
    config = _config(args)
    data = {"resize": args.resize, "channels": args.channels, "limit": args.limit, "root": args.data_root}
    if dense is not None:  # held-out canvases from the training canvases, as a recipe's search stage
        size = args.val_size or default_val_size(len(dense.train_loader.dataset))
        train, held = dense.held_out(size, "--val-size")
        test = dense.test_loader
    else:
        train, held, test = holdout_loaders(
            args.data,
            val_size=args.val_size,
            batch_size=args.batch_size or 64,
            eval_batch_size=args.eval_batch_size,
            seed=config.seed,
            **data,
        )
        check_fits_data(model, held)
    metric, values = next(
        (m, v)
        for m, v in (
            ("macs", args.target_macs),
            ("params", args.target_params),
            ("latency", args.target_latency),
        )
        if v
    )
    out = Path(args.out)
    result = search_widths(
        model,
        x,
        args.method,
        [f"{metric}={v}" for v in values],
        train,
        held,
        config,
        out_dir=out,
        resume=args.resume,
        task=dense.task if dense is not None else None,
        ignored=args.ignored,
    )
    small = apply_search_plan(model, result.plan, x)
    saved_for = next(label for label, plan in result.plans.items() if plan is result.plan)  # the first given
    console = Console()
    table = Table(title=f"{args.method} search on {args.data}")
    for column in (
        "target",
        metric if metric != "latency" else "latency (predicted)",
        "held-out acc" if dense is None else f"held-out {metric_label(dense.task.metric)}",
        "widths",
    ):
        table.add_column(column)
    for label, plan in result.plans.items():
        widths = ", ".join(str(w) for w in plan.meta["widths"].values())
        estimate = plan.meta["estimate"]
        after = " after short KD" if estimate.get("after") == "kd" else ""  # n2n: not the saved model's
        table.add_row(
            label, f"{plan.meta['predicted'][metric]:.3f}", f"{estimate['accuracy']:.2%}{after}", widths
        )
    console.print(table)
    console.print(
        f"scored {result.evaluated['cheap']} cheap + {result.evaluated['full']} full candidates "
        f"in {result.seconds:.1f} s"
    )
    final = result.history.get("final")
    if final:  # the held-out accuracy above is before distillation; say what picked the winner
        rows = final["finalists"]
        winner = next(r for r in rows if r["winner"])
        uniform = next(r for r in rows if r["uniform"])
        acc, uniform_acc = winner["distilled"]["accuracy"], uniform["distilled"]["accuracy"]
        console.print(
            f"finalists: {len(rows)} distilled briefly; the winner holds {acc:.2%} held-out after it "
            f"(uniform {uniform_acc:.2%})"
        )
    if args.finetune_epochs:
        overrides = {"epochs": args.finetune_epochs, **({"lr": args.finetune_lr} if args.finetune_lr else {})}
        tc = TrainConfig.preset("finetune" if dense is None else "dense_finetune", **overrides)
        if dense is not None:
            ft_train = train
        else:
            ft_train, _, _ = holdout_loaders(
                args.data,
                val_size=args.val_size,
                batch_size=tc.batch_size,
                augment=tc.augment,
                shift=tc.augment_shift,
                seed=config.seed,
                **data,
            )
        teacher = None if args.no_distill else model
        finetune_pruned(small, teacher, ft_train, test, tc, out_dir=out / "finetune", resume=args.resume,
                        task=dense.task if dense is not None else None)  # fmt: skip
    score = dense.score if dense is not None else (lambda m: evaluate(m, test)[0])
    before, after = score(model), score(small)
    save(
        small,
        out / "model",
        extra={"input_shape": list(shape), "source": args.model, "search": args.method,
               **({"task": args.task} if dense is not None else {})},
    )  # fmt: skip
    label = metric_label(dense.task.metric) if dense is not None else "accuracy"
    console.print(
        f"test {label} {before:.2%} -> {after:.2%}"
        + (
            f" after {args.finetune_epochs} fine-tuning epochs"
            if args.finetune_epochs
            else " (no fine-tuning)"
        )
        + f"; pruned model for {saved_for} saved to {out / 'model'}"
    )
    return 0
