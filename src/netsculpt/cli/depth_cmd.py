"""`netsculpt fold MODEL --out DIR`, `netsculpt triage MODEL --data NAME`, and `prune --depth-blocks N`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console
from torch import nn

from netsculpt.cli.common import add_model_args, check_fits_data, example, load_model
from netsculpt.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    from netsculpt.cli.train_cmd import add_data_args

    p = sub.add_parser("fold", help="fold BatchNorms and adjacent linear convs into single layers (exact)")
    add_model_args(p)
    p.add_argument("--no-convs", action="store_true", help="fold BatchNorms only, no conv -> conv merges")
    p.add_argument(
        "--grouped",
        action="store_true",
        help="also merge depthwise/grouped convs into dense ones (exact; may cost more MACs)",
    )
    p.add_argument("--out", required=True, help="output directory")
    p.set_defaults(func=run_fold)

    t = sub.add_parser("triage", help="collapse each residual block into one layer; criticality table + plot")
    add_model_args(t)
    add_data_args(t, batch="64")
    t.add_argument("--unit", choices=["block", "stage"], default="block", help="collapse blocks or stages")
    t.add_argument(
        "--init", default="distilled", help="random, first, distilled (comma-separated for several)"
    )
    t.add_argument("--train", default="layer", help="layer, network, network_kd (comma-separated)")
    t.add_argument("--steps", type=int, default=100, help="fine-tune steps per collapsed unit")
    t.add_argument("--lr", type=float, default=0.01, help="learning rate of the fine-tune steps")
    add_val_size_arg(t, "training images held out for the table")
    t.add_argument("--out", required=True, help="output directory (triage.json, triage.png)")
    t.set_defaults(func=run_triage)


def add_val_size_arg(p: argparse.ArgumentParser, what: str) -> None:
    """``--val-size``; its default holds out 500 images, or a fifth of a smaller (``--limit``) split."""
    p.add_argument(
        "--val-size", type=int, default=None, help=f"{what} (default: 500, or 20%% of a smaller split)"
    )


def _held_out(args: argparse.Namespace, batch: int = 64) -> tuple[Any, Any]:
    """(training part, held-out part) of the training split; the test split is never used to choose."""
    from netsculpt.search.holdout import holdout_loaders

    train, held, _ = holdout_loaders(
        args.data,
        val_size=args.val_size,
        batch_size=args.batch_size or batch,
        resize=args.resize,
        channels=args.channels,
        limit=args.limit,
        root=args.data_root,
    )
    return train, held


def prune_blocks(args: argparse.Namespace, model: nn.Module, shape: tuple[int, ...]) -> int:
    from netsculpt.depth import plan_depth, remove_blocks
    from netsculpt.io import save
    from netsculpt.measure import format_metrics_table, measure

    x = example(shape)
    data = None
    if args.data is not None:
        _, data = _held_out(args)
        check_fits_data(model, data)
    elif args.depth_criterion == "sensitivity" and isinstance(args.depth_blocks, int):
        raise ConfigError("--depth-criterion sensitivity measures accuracy: pass --data NAME")
    plan = plan_depth(model, x, blocks=args.depth_blocks, criterion=args.depth_criterion, data=data)
    small = remove_blocks(model, plan.blocks)
    out = Path(args.out)
    save(small, out, extra={"input_shape": list(shape), "source": args.model})
    console = Console()
    console.print(format_metrics_table(measure(model, x, runs=10), measure(small, x, runs=10)))
    console.print(f"saved to {out} (removed blocks: {', '.join(b['name'] for b in plan.blocks)})")
    return 0


def run_fold(args: argparse.Namespace) -> int:
    import torch

    from netsculpt.depth import fold
    from netsculpt.io import save
    from netsculpt.measure import format_metrics_table, measure

    model, shape = load_model(args)
    model.eval()
    x = example(shape)
    folded = fold(model, x, convs=not args.no_convs, grouped=args.grouped)
    with torch.no_grad():
        diff = float((folded(x) - model(x)).abs().max())
    out = Path(args.out)
    save(folded, out, extra={"input_shape": list(shape), "source": args.model})
    merges = folded.netsculpt_spec["edits"][-1].get("merges", []) if folded.netsculpt_spec["edits"] else []
    console = Console()
    console.print(format_metrics_table(measure(model, x, runs=10), measure(folded, x, runs=10)))
    console.print(f"saved to {out}: {len(merges)} merges, largest output difference {diff:.2e}")
    return 0


def run_triage(args: argparse.Namespace) -> int:
    from netsculpt.cli.train_cmd import data_defaults
    from netsculpt.depth.triage import TriageConfig, triage, write_triage

    data_defaults(args)
    model, shape = load_model(args)
    train, held = _held_out(args)
    check_fits_data(model, held)
    config = TriageConfig(
        unit=args.unit,
        inits=tuple(s.strip() for s in args.init.split(",") if s.strip()),
        schemes=tuple(s.strip() for s in args.train.split(",") if s.strip()),
        steps=args.steps,
        lr=args.lr,
    )
    rows = triage(model, example(shape), train, held, config)
    paths = write_triage(rows, Path(args.out))
    Console().print(f"triage of {len(rows)} runs written to {', '.join(str(p) for p in paths)}")
    return 0
