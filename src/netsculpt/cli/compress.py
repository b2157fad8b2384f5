"""`netsculpt compress`: the main job (train -> prune -> fine-tune -> measure) with a summary table."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compress", help="run the main job on the bundled digits (or your model and data)")
    p.add_argument("--model", default="lenet5")
    p.add_argument("--data", default="mnist5k")
    p.add_argument("--resize", type=int, default=None)
    p.add_argument("--channels", type=int, default=None)
    p.add_argument("--limit", type=int, default=None, help="cap samples per split (smoke runs)")
    p.add_argument("--train-preset", default="lenet5_mnist5k")
    p.add_argument("--train-epochs", type=int, default=None)
    p.add_argument("--criterion", default="l1")
    p.add_argument("--ratio", type=float, default=0.5)
    p.add_argument("--finetune-epochs", type=int, default=6)
    p.add_argument("--out", default="runs/lenet5_mnist5k", help="run directory (rerun to resume)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from netsculpt.allocate import check_ratio
    from netsculpt.pipeline import CompressJob, print_summary, run_job

    check_ratio(args.ratio)
    job = CompressJob(
        model=args.model,
        data=args.data,
        resize=args.resize,
        channels=args.channels,
        limit=args.limit,
        train_preset=args.train_preset,
        train_epochs=args.train_epochs,
        criterion=args.criterion,
        ratio=args.ratio,
        finetune_epochs=args.finetune_epochs,
    )
    print_summary(run_job(job, args.out))
    print(f"results: {args.out}/results.json")
    return 0
