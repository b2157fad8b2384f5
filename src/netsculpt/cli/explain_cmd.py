"""`netsculpt explain MODEL_OR_RUN_DIR --data NAME --out DIR`: interpretation maps, before and after."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from netsculpt.cli.common import add_model_args
from netsculpt.errors import ConfigError


def parse_layers(text: str) -> list[str]:
    layers = [s.strip() for s in text.split(",") if s.strip()]
    if not layers:
        raise argparse.ArgumentTypeError(f"--layers looks like conv1,conv2, got {text!r}")
    return layers


def parse_target(text: str) -> str | int:
    if text in ("label", "predicted"):
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--class is 'label', 'predicted' or a class index, got {text!r}"
        ) from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"--class must be >= 0, got {value}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    from netsculpt.cli.train_cmd import add_data_args

    p = sub.add_parser(
        "explain",
        help="Grad-CAM and CHIP interpretation maps of a model, or of a run's baseline and final model",
        description="MODEL is a zoo name, a saved model or a run directory (`netsculpt compress`): for a "
        "run, the baseline and the final model are explained on the same test images, the channels the prune "
        "stages removed are marked, and the run's report.html gains a section with the maps.",
    )
    add_model_args(p)
    add_data_args(p, batch="64")
    p.set_defaults(data=None)
    p.add_argument(
        "--layers", type=parse_layers, default=None, help="layers to explain (default: last two convs)"
    )
    p.add_argument("--images", type=int, default=8, help="test images to draw maps on (the first N)")
    p.add_argument(
        "--class", dest="target", type=parse_target, default="label",
        help="class explained: label (each image's, default), predicted, or an index for every image",
    )  # fmt: skip
    p.add_argument(
        "--calib-images", type=int, default=320, help="training images the CHIP importance learns from"
    )
    p.add_argument("--masks", type=int, default=256, help="random channel masks per class and layer (CHIP)")
    p.add_argument(
        "--sparsity", type=float, default=0.05, help="Lasso strength as a fraction of the all-zero one"
    )
    p.add_argument("--baseline", default=None, help="the unpruned saved model, when MODEL is a pruned one")
    p.add_argument("--out", default=None, help="output folder (default RUN_DIR/explain for a run directory)")
    p.set_defaults(func=run)


def _check(args: argparse.Namespace) -> None:
    for name in ("images", "calib_images", "masks"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if not 0 < args.sparsity < 1:
        raise ConfigError(f"--sparsity must be in (0, 1), got {args.sparsity}")


def _loaders(args: argparse.Namespace, recipe_data: dict[str, Any]) -> tuple[Any, Any]:
    from netsculpt.cli.train_cmd import data_source
    from netsculpt.data import DataSource

    if args.data is not None:  # the command line wins over the run's recipe
        source = data_source(args)
    elif recipe_data:
        name, root, resize, channels = (recipe_data[k] for k in ("name", "root", "resize", "channels"))
        source = DataSource(name, root, resize, channels, args.limit, recipe_data.get("options") or {})
    else:
        raise ConfigError("pass --data NAME (see `netsculpt data`): the images to explain the model on")
    return source.loaders(args.batch_size or 64)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from netsculpt.explain.chip_maps import Perturbation
    from netsculpt.explain.job import Settings, default_layers
    from netsculpt.explain.runner import explain_source, summary_lines
    from netsculpt.explain.sources import from_models, from_run, is_run_dir

    _check(args)
    console = Console(stderr=True)

    def layers_for(model: Any, shape: tuple[int, ...], others: Any = ()) -> list[str]:
        return args.layers or default_layers(model, shape, others)

    if is_run_dir(args.model):
        src = from_run(Path(args.model), layers_for, args.trust_builder)
        out = Path(args.out) if args.out else Path(args.model) / "explain"
    else:
        if args.out is None:
            raise ConfigError("pass --out DIR: where the maps and explain.json go")
        from netsculpt.cli.common import load_model
        from netsculpt.cli.train_cmd import data_defaults

        if args.data is not None and not Path(args.model).is_dir():
            data_defaults(args)
        model, shape = load_model(args)
        model_dir = args.model if Path(args.model).is_dir() else None
        src = from_models(model, shape, args.baseline, model_dir, layers_for, args.trust_builder)
        out = Path(args.out)
    settings = Settings(
        layers=args.layers,
        target=args.target,
        perturbation=Perturbation(masks=args.masks, sparsity=args.sparsity),
    )
    exp = explain_source(
        src,
        _loaders(args, src.data),
        out,
        images=args.images,
        calib_images=args.calib_images,
        settings=settings,
    )
    for line in summary_lines(exp.numbers):
        console.print(line)
    if src.run_dir is not None and (src.run_dir / "results.json").is_file():
        from netsculpt.report import write_report

        console.print(f"report: {write_report(src.run_dir)}")
    print(f"explain: {out}")
    return 0
