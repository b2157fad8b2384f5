"""`netsculpt sparsify MODEL --sparsity 0.9 --pattern P --method M --data NAME --out DIR`: sparse weights.

Masks the weights (unstructured, N:M or block), trains with the preset as one-shot + fine-tune, on the
cubic ramp, or with GaP (each phase a resumable run under ``DIR/phases``), folds the masks into the
weights and saves the model; zeros are stored sparse, and ``--coding context`` range-codes the masks.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from netsculpt.cli.common import add_model_args, load_model
from netsculpt.cli.train_cmd import (
    add_data_args,
    add_schedule_args,
    add_seed_arg,
    add_warmup_arg,
    data_defaults,
    loaders,
    preset_config,
)
from netsculpt.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    from netsculpt.sparsity.config import METHODS, SCHEDULES, SCOPES

    p = sub.add_parser("sparsify", help="zero weights (unstructured, N:M, block; magnitude or GaP) and train")
    add_model_args(p)
    add_data_args(p)
    p.add_argument("--sparsity", type=float, default=0.9, help="fraction of zero weights (N:M fixes its own)")
    p.add_argument("--pattern", default="unstructured", help="unstructured, N:M (e.g. 2:4) or block")
    p.add_argument(
        "--block",
        type=int,
        nargs=2,
        default=(4, 4),
        metavar=("ROWS", "COLS"),
        help="--pattern block: its size",
    )
    p.add_argument(
        "--method", choices=METHODS, default="magnitude", help="magnitude, or GaP (grow and prune)"
    )
    p.add_argument(
        "--schedule", choices=SCHEDULES, default="oneshot", help="magnitude: at once or cubic ramp"
    )
    p.add_argument(
        "--scope", choices=SCOPES, default="auto",
        help="split between layers; auto: one global threshold (unstructured), else per layer",
    )  # fmt: skip
    p.add_argument(
        "--skip", action="append", default=[], metavar="LAYER",
        help="layer left dense (repeatable), e.g. a first conv whose shape a pattern does not divide",
    )  # fmt: skip
    p.add_argument("--partitions", type=int, default=4, help="GaP: layer groups grown dense in turn")
    p.add_argument(
        "--one-lr-schedule", action="store_true",
        help="gradual / GaP: one lr schedule over all phases (as dense training), not a restart each",
    )  # fmt: skip
    p.add_argument("--preset", default="finetune", help="training preset (default finetune)")
    add_schedule_args(p, "total epochs over every phase")
    add_warmup_arg(p)
    add_seed_arg(p)
    p.add_argument("--coding", choices=("plain", "context"), default="plain", help="how masks are stored")
    p.add_argument("--out", required=True, help="run directory: phases and the sparse model")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from netsculpt.io import save
    from netsculpt.sparsity import SparsityConfig, skip_filter, sparsify, target_layers

    out = Path(args.out)
    if (out / "model").exists() and not args.resume:
        raise ConfigError(f"{str(out)!r} already holds a sparse model; pass --resume or another --out")
    data_defaults(args)
    model, shape = load_model(args)
    config = preset_config(args, epochs="epochs", lr="lr", warmup_epochs="warmup_epochs", seed="seed")
    sparse = SparsityConfig(
        sparsity=args.sparsity, pattern=args.pattern, block=tuple(args.block), scope=args.scope,
        method=args.method, schedule=args.schedule, partitions=args.partitions,
        restart_lr=not args.one_lr_schedule, filter_fn=skip_filter(model, args.skip, "--skip"),
    )  # fmt: skip
    train_loader, test_loader = loaders(
        args, config.batch_size, config.augment, config.seed, config.augment_shift
    )
    result = sparsify(model, sparse, train_loader, test_loader, config, out_dir=out / "phases",
                      resume=args.resume)  # fmt: skip
    extra = {
        "input_shape": list(shape),
        "data": args.data,
        "accuracy": result.test_acc,
        "sparsity": {"config": sparse.to_dict(), "layers": result.layer_sparsity, "phases": result.phases},
        "train": config.to_dict(),
    }
    save(model.cpu(), out / "model", extra=extra, coding=args.coding)
    accuracy = extra["accuracy"]
    shown = f"{accuracy:.2%}" if isinstance(accuracy, float) else "n/a"
    selected = len(target_layers(model, sparse.filter_fn))
    Console().print(
        f"sparse model: {result.overall:.1%} of the weights of {selected} sparsified layers are zero, test "
        f"accuracy {shown}; saved to {out / 'model'} ({args.coding} coding)"
    )
    return 0
