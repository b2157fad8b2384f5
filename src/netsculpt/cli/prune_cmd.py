"""`netsculpt prune MODEL (--ratio R | --target-macs/params/latency F | --widths a=2,b=3) --out DIR`.

``--steps K`` prunes to the same goal in K rounds (``prune_rounds``).
``--ratio-for 'layer4.*=0.7'`` (repeatable) gives layers their own ratio, as ``ns.prune(ratios=)``."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from netsculpt.cli.common import add_model_args, check_fits_data, example, load_model
from netsculpt.cli.prune_rounds import add_steps_arg, check_steps
from netsculpt.errors import ConfigError


def parse_widths(text: str) -> dict[str, int]:
    try:
        pairs = [item.split("=") for item in text.split(",") if item.strip()]
        return {k.strip(): int(v) for k, v in pairs}
    except ValueError:
        raise argparse.ArgumentTypeError(f"widths look like conv1=2,conv2=3, got {text!r}") from None


def parse_ratio_for(text: str) -> tuple[str | type, float]:
    """``--ratio-for KEY=R``: a module name, glob or class name, and the fraction it loses."""
    from netsculpt.allocate import check_ratio
    from netsculpt.allocate.per_layer import key_from_text
    from netsculpt.errors import NetsculptError

    key, sep, value = text.rpartition("=")
    try:
        if not sep or not key.strip():
            raise ValueError
        ratio = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--ratio-for takes NAME=RATIO, e.g. 'layer4.*=0.7' or 'Linear=0', got {text!r}"
        ) from None
    try:
        return key_from_text(key), check_ratio(ratio)
    except NetsculptError as exc:
        raise argparse.ArgumentTypeError(f"--ratio-for {text!r}: {exc}") from None


def layer_key(text: str) -> str | type:
    """An ``--ignored`` entry as ``ignored=`` takes it: a name, glob, or class name."""
    from netsculpt.allocate.per_layer import key_from_text
    from netsculpt.errors import NetsculptError

    try:
        return key_from_text(text)
    except NetsculptError as exc:
        raise argparse.ArgumentTypeError(f"--ignored {text!r}: {exc}") from None


def add_ignored_arg(p: argparse.ArgumentParser) -> None:
    """``--ignored``, as prune and search both take it."""
    p.add_argument(
        "--ignored",
        nargs="*",
        type=layer_key,
        default=[],
        help="module names, globs ('layer3.*') or class names (Linear, or a class of the model's own: "
        "Detect) whose channels are kept",
    )


def parse_depth_blocks(text: str) -> int | list[str]:
    """``--depth-blocks``: a count (the lowest-scoring blocks) or comma-separated block names."""
    if text.strip().isdigit():
        return int(text)
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"--depth-blocks takes a count or block names, got {text!r}")
    return names


def parse_round_to(text: str) -> int | str:
    from netsculpt.allocate.widths import check_round_to
    from netsculpt.errors import PruningError

    try:
        return check_round_to(text)
    except PruningError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(sub: argparse._SubParsersAction) -> None:
    from netsculpt.cli.depth_cmd import add_val_size_arg
    from netsculpt.cli.train_cmd import add_data_args

    p = sub.add_parser("prune", help="remove channels physically and save the smaller model")
    add_model_args(p)
    how = p.add_mutually_exclusive_group()
    how.add_argument("--ratio", type=float, default=None, help="fraction of each group to remove, in [0, 1)")
    how.add_argument("--target-macs", type=float, default=None, help="keep this fraction of MACs, e.g. 0.5")
    how.add_argument("--target-params", type=float, default=None, help="keep this fraction of parameters")
    how.add_argument(
        "--target-latency",
        type=float,
        default=None,
        help="keep this fraction of the latency predicted from per-layer timings on this machine",
    )
    how.add_argument("--widths", type=parse_widths, default=None, help="exact widths, e.g. conv1=2,conv2=3")
    how.add_argument(
        "--depth-blocks",
        type=parse_depth_blocks,
        default=None,
        metavar="N|NAME,...",
        help="remove this many whole residual blocks, or the named ones: layer2.3,layer3.1 (docs/depth.md)",
    )
    p.add_argument(
        "--depth-criterion",
        default="output_change",
        help="block score: output_change, sensitivity or a criterion",
    )
    p.add_argument(
        "--strategy", choices=["global", "uniform", "fast"], default="global", help="how targets are met"
    )
    p.add_argument("--criterion", default="l1", help="channel importance (see `netsculpt criteria`)")
    p.add_argument("--calib-batches", type=int, default=16, help="calibration batches for data criteria")
    p.add_argument(
        "--ratio-for",
        type=parse_ratio_for,
        action="append",
        default=None,
        metavar="NAME=R",
        help="this layer's own ratio (repeatable; a later one wins): a module name, glob or class name "
        "(torch.nn's or the model's own), e.g. 'layer4.*=0.7' 'Linear=0' 'Bottleneck=0.3'; other groups lose "
        "--ratio (default 0 then)",
    )
    add_ignored_arg(p)
    p.add_argument(
        "--allow-inexact",
        action="store_true",
        help="also prune channels under LayerNorm/GroupNorm/attention (needs fine-tuning)",
    )
    p.add_argument(
        "--round-to",
        type=parse_round_to,
        default="hw",
        help="width rounding: hw (default: multiples of 8, or 16 in groups of 64+), auto (measured on "
        "--runtime), or N (multiples of N; 1 = exact counts)",
    )
    p.add_argument(
        "--runtime", default="torch", help="runtime that --round-to auto and --target-latency measure on"
    )
    p.add_argument("--min-channels", type=int, default=1, help="never keep fewer channels in a group")
    add_data_args(p, task=True, batch="64; 16 with --task")
    add_val_size_arg(p, "--depth-blocks with --data: training images held out to score blocks")
    p.set_defaults(data=None)
    data_flag = next(a for a in p._actions if "--data" in a.option_strings)
    data_flag.help = (
        "dataset name (see `netsculpt data`); a model name is then built for its images, classes and "
        "channels (--resize / --channels), traced at that size and saved with it"
    )
    add_steps_arg(p)
    p.add_argument("--out", required=True, help="output directory")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from netsculpt.allocate import Target
    from netsculpt.cli.task_data import dense_data, is_dense
    from netsculpt.cli.train_cmd import loaders
    from netsculpt.importance import get_criterion
    from netsculpt.io import save
    from netsculpt.measure import format_metrics_table, measure
    from netsculpt.prune import apply_plan, plan_pruning

    check_steps(args)  # refused combinations first, before the model loads
    ratios = _ratios(args)
    dense = dense_data(args, criterion=args.criterion) if is_dense(args, args.criterion) else None
    if dense is not None and args.depth_blocks is not None:
        raise ConfigError(
            f"--depth-blocks scores blocks on classification data; it does not run --task {args.task} yet"
        )
    if args.val_size is not None and (args.depth_blocks is None or args.data is None):
        raise ConfigError(
            "--val-size holds out images to score blocks: it goes with --depth-blocks and --data (channel "
            "criteria calibrate on the training split)"
        )
    if dense is None and args.data is not None:  # a model name is built, traced and saved for the data's
        from netsculpt.cli.train_cmd import data_defaults  # images, as train / eval / distill build it

        data_defaults(args)  # (it was traced at its design size, 224 px, and saved with that input shape)
    model, shape = load_model(args)
    x = example(shape)
    if args.depth_blocks is not None:
        from netsculpt.cli.depth_cmd import prune_blocks

        return prune_blocks(args, model, shape)
    data = None
    if get_criterion(args.criterion).needs - {"weights"}:
        if args.data is None:
            raise ConfigError(
                f"criterion {args.criterion!r} learns from data: pass --data NAME (see `netsculpt data`)"
            )
        data = dense.train_loader if dense is not None else loaders(args, args.batch_size or 64)[0]
        if dense is None:
            check_fits_data(model, data)
    target = None
    if args.target_macs is not None:
        target = Target(macs=args.target_macs)
    elif args.target_params is not None:
        target = Target(params=args.target_params)
    elif args.target_latency is not None:
        target = Target(latency=args.target_latency)
    ratio = args.ratio if (args.ratio is not None or target or args.widths or ratios) else 0.5
    options = {
        "criterion": args.criterion,
        "strategy": args.strategy,
        "data": data,
        "calib_batches": args.calib_batches,
        "ignored": args.ignored,
        "allow_inexact": args.allow_inexact,
        "round_to": args.round_to,
        "min_channels": args.min_channels,
        "runtime": args.runtime,
        **({"task": dense.task} if dense is not None else {}),
    }
    console = Console()
    if args.steps is not None:
        from netsculpt.cli.prune_rounds import prune_in_rounds

        goal = {"target": target} if target is not None else {"ratios": ratios or {}, "ratio": ratio}
        small, plan = prune_in_rounds(model, x, args, goal, options, console)
    else:
        plan, graph = plan_pruning(
            model, x, ratio=ratio, target=target, widths=args.widths, ratios=ratios, **options
        )
        small = apply_plan(model, plan, x, graph=graph)
    out = Path(args.out)
    save(small, out, extra={"input_shape": list(shape), "source": args.model})
    console.print(format_metrics_table(measure(model, x, runs=10), measure(small, x, runs=10)))
    if plan is None:  # the rounds' groups did not chain into one plan of the original
        console.print(f"saved to {out} (no plan.json: the rounds' plans do not compose into one)")
        return 0
    plan.save(out / "plan.json")
    console.print(f"saved to {out} ({len(plan.keep)} groups pruned, {plan.removed} channels removed)")
    return 0


def _ratios(args: argparse.Namespace) -> dict[str | type, float] | None:
    """``--ratio-for`` as ``ratios=``: in the order given, a repeated key moved to where it was last
    given (later keys override earlier ones for the layers they share)."""
    if not args.ratio_for:
        return None
    given = {
        "--target-macs": args.target_macs,
        "--target-params": args.target_params,
        "--target-latency": args.target_latency,
        "--widths": args.widths,
        "--depth-blocks": args.depth_blocks,
    }
    other = next((flag for flag, value in given.items() if value is not None), None)
    if other is not None:
        raise ConfigError(
            f"--ratio-for sets a ratio per layer and goes with --ratio (what every other group loses), not "
            f"with {other}; to keep layers whole under a target pass --ignored NAME ..."
        )
    if args.round_to == "auto":
        raise ConfigError("--ratio-for with --round-to auto is not supported; use --round-to hw or N")
    ratios: dict[str | type, float] = {}
    for key, value in args.ratio_for:
        ratios.pop(key, None)
        ratios[key] = value
    return ratios
