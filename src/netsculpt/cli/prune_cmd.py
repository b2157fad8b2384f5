"""`netsculpt prune MODEL --ratio 0.5 --out DIR`: structural pruning, saved without pickle."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from netsculpt.cli.common import add_model_args, example, load_model


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prune", help="remove channels physically and save the smaller model")
    add_model_args(p)
    p.add_argument(
        "--ratio", type=float, default=0.5, help="fraction of each prunable group to remove, in [0, 1)"
    )
    p.add_argument(
        "--criterion", default="l1", help="channel importance criterion (see `netsculpt criteria`)"
    )
    p.add_argument("--ignored", nargs="*", default=[], help="module names whose channels are kept")
    p.add_argument(
        "--allow-inexact",
        action="store_true",
        help="also prune channels under LayerNorm/GroupNorm/attention (needs fine-tuning)",
    )
    p.add_argument("--round-to", type=int, default=1, help="keep a multiple of this many channels per group")
    p.add_argument("--out", required=True, help="output directory")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from netsculpt.io import save
    from netsculpt.measure import format_metrics_table, measure
    from netsculpt.prune import apply_plan, plan_pruning

    model, shape = load_model(args)
    x = example(shape)
    plan, graph = plan_pruning(
        model,
        x,
        criterion=args.criterion,
        ratio=args.ratio,
        ignored=args.ignored,
        allow_inexact=args.allow_inexact,
        round_to=args.round_to,
    )
    small = apply_plan(model, plan, x, graph=graph)
    out = Path(args.out)
    save(small, out, extra={"input_shape": list(shape), "source": args.model})
    plan.save(out / "plan.json")
    console = Console()
    console.print(format_metrics_table(measure(model, x, runs=10), measure(small, x, runs=10)))
    console.print(f"saved to {out} ({len(plan.keep)} groups pruned, {plan.removed} channels removed)")
    return 0
