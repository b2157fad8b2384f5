"""`netsculpt train` and `netsculpt eval`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from rich.console import Console

from netsculpt.cli.common import add_model_args, check_fits_data, load_model
from netsculpt.errors import ConfigError

if TYPE_CHECKING:
    from netsculpt.data import DataSource


def add_data_args(p: argparse.ArgumentParser, task: bool = False, batch: str = "the preset's") -> None:
    """``--data`` and friends; ``task``: also ``--task`` / ``--data-option`` (the commands that run
    detection / segmentation; the others do not take them rather than ignore them); ``batch``: what
    ``--batch-size`` defaults to in this command, for its help."""
    p.add_argument("--data", default="mnist5k", help="dataset name (see `netsculpt data`)")
    p.add_argument("--data-root", default=None, help="folder holding the dataset files (mnist, cifar10, ...)")
    p.add_argument(
        "--resize", type=int, default=None, help="resize images to this size (e.g. 32 for CIFAR models)"
    )
    p.add_argument("--channels", type=int, default=None, help="repeat grayscale to this many channels")
    p.add_argument("--limit", type=int, default=None, help="use at most this many samples per split")
    p.add_argument("--batch-size", type=int, default=None, help=f"images per batch (default: {batch})")
    if task:
        from netsculpt.cli.task_data import add_task_args

        add_task_args(p)


def data_source(args: argparse.Namespace) -> DataSource:
    """The :class:`~netsculpt.data.DataSource` the ``--data`` flags name (classification: no options)."""
    from netsculpt.data import DataSource

    return DataSource(args.data, args.data_root, args.resize, args.channels, args.limit)


def loaders(
    args: argparse.Namespace, batch_size: int, augment: bool = False, seed: int = 0, shift: int | None = None
):
    return data_source(args).loaders(batch_size, seed=seed, augment=augment, shift=shift)


def data_defaults(args: argparse.Namespace) -> None:
    """Derive the model's input channels / classes from the dataset when not given."""
    if Path(args.model).is_dir():
        return
    info = data_source(args).info()
    if args.in_channels is None:
        args.in_channels = info.in_channels
    if args.num_classes is None:
        args.num_classes = info.num_classes
    if args.input_shape is None:
        args.input_shape = (1, info.in_channels, *info.image_size)


def preset_config(args: argparse.Namespace, classification: str = "default", **fields: str) -> Any:
    """``TrainConfig.preset(args.preset)`` with every option the user gave: config field -> args name.

    A refusal names the command's options, not the config's fields (a preset's one-epoch warm-up with
    ``--epochs 1``: "--warmup-epochs 0"), and says which preset the other values came from."""
    from netsculpt.train import TrainConfig

    given = {field: getattr(args, name) for field, name in fields.items()}
    name = preset_name(args, classification)
    try:
        return TrainConfig.preset(name, **{k: v for k, v in given.items() if v is not None})
    except ConfigError as exc:
        import re

        named = [arg for field, arg in fields.items() if re.search(rf"\b{field}\b", str(exc))]
        flags = " / ".join(f"--{arg.replace('_', '-')}" for arg in named or fields.values())
        raise ConfigError(
            f"{exc} (on the command line: {flags}; the rest comes from --preset {name})"
        ) from None


def add_schedule_args(p: argparse.ArgumentParser, epochs: str = "training epochs") -> None:
    """``--epochs`` and ``--lr`` of a command that trains with a preset (None: the preset's)."""
    p.add_argument("--epochs", type=int, default=None, help=f"{epochs} (default: the preset's)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default: the preset's)")


def add_bn_l1_arg(p: argparse.ArgumentParser) -> None:
    """``--bn-l1``, as train and distill both take it (the recipe's ``bn_l1`` in both kinds of stage)."""
    p.add_argument(
        "--bn-l1",
        type=float,
        default=None,
        help="network slimming: add this lambda * sign(gamma) to the scale gradients of the BatchNorms "
        "whose channels can be pruned, then prune with --criterion bn_scale (e.g. 1e-4; default 0: off; "
        "docs/training.md)",
    )


def add_seed_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--seed", type=int, default=None, help="seeds data order and init (default: the preset's, 0)"
    )


def add_warmup_arg(p: argparse.ArgumentParser) -> None:
    """``--warmup-epochs``, for every command that trains with a preset (some presets warm up)."""
    p.add_argument(
        "--warmup-epochs",
        type=int,
        default=None,
        help="epochs of linear lr warmup (default: the preset's; 0 for a one-epoch try of a preset)",
    )


def preset_name(args: argparse.Namespace, classification: str) -> str:
    """``--preset``, else ``classification``'s preset, or its dense counterpart for ``--task`` (dense /
    dense_finetune: the schedule of examples/detector_digits.yaml)."""
    if args.preset is not None:
        return args.preset
    if getattr(args, "task", "classification") == "classification":
        return classification
    return "dense" if classification == "default" else "dense_finetune"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model on a dataset (checkpoint every epoch, --resume)")
    add_model_args(p)
    add_data_args(p, task=True)
    add_schedule_args(p)
    add_warmup_arg(p)
    p.add_argument(
        "--preset",
        default=None,
        help="training preset, e.g. lenet5_mnist5k (default: default; dense for --task)",
    )
    add_seed_arg(p)
    p.add_argument(
        "--shift",
        type=int,
        default=None,
        help="largest random shift in pixels when the preset augments (default: 1/8 of the image side)",
    )
    p.add_argument(
        "--checkpoint-activations",
        action="store_true",
        default=None,
        help="recompute each block's activations in the backward pass instead of storing them "
        "(less memory, about one more forward per step, same weights; docs/reversible.md)",
    )
    add_bn_l1_arg(p)
    p.add_argument("--out", required=True, help="run directory: checkpoints, history, the trained model")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    p.set_defaults(func=run_train)
    p = sub.add_parser("eval", help="test accuracy of a model on a dataset")
    add_model_args(p)
    add_data_args(p, task=True, batch="256")
    p.set_defaults(func=run_eval)


def run_train(args: argparse.Namespace) -> int:
    from netsculpt.cli.task_data import dense_data, is_dense
    from netsculpt.io import save
    from netsculpt.tasks.metrics import metric_label
    from netsculpt.train import train

    config = preset_config(
        args,
        epochs="epochs",
        lr="lr",
        warmup_epochs="warmup_epochs",
        seed="seed",
        augment_shift="shift",
        batch_size="batch_size",
        checkpoint_activations="checkpoint_activations",
        bn_l1="bn_l1",
    )
    dense = None
    if is_dense(args):  # the recipe runner's canvases and collate; never augmented (boxes would not move)
        args.seed = config.seed
        dense = dense_data(args, batch_size=config.batch_size)
        train_loader, test_loader = dense.train_loader, dense.test_loader
    else:
        data_defaults(args)
        train_loader, test_loader = loaders(
            args, config.batch_size, config.augment, config.seed, config.augment_shift
        )
    torch.manual_seed(config.seed)  # the initial weights too: --seed makes a fresh run repeatable
    model, shape = load_model(args)
    if dense is None:
        check_fits_data(model, train_loader)
    out = Path(args.out)
    result = train(model, train_loader, test_loader, config, out_dir=out / "checkpoints", resume=args.resume,
                   task=dense.task if dense is not None else None)  # fmt: skip
    metric = dense.task.metric if dense is not None else "accuracy"
    extra = {"input_shape": list(shape), "data": args.data, metric: result.final_acc}
    save(model, out / "model", extra={**extra, **({"task": args.task} if dense is not None else {})})
    label = metric_label(metric)  # what the run summary calls it: mAP@[.5:.95], mIoU
    Console().print(
        f"test {label} {result.final_acc:.2%} (best {result.best_acc:.2%}); model saved to {out / 'model'}"
    )
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from netsculpt.cli.task_data import dense_data, is_dense
    from netsculpt.train import evaluate

    if is_dense(args):
        dense = dense_data(args)
        model, _ = load_model(args)
        scores = dense.task.evaluate(model, dense.test_loader)
        text = ", ".join(f"{k} {v:.4f}" for k, v in scores.items() if isinstance(v, float))
        Console().print(f"{args.model} on {args.data}: {text}")
        return 0
    data_defaults(args)
    model, _ = load_model(args)
    _, test_loader = loaders(args, args.batch_size or 256)
    check_fits_data(model, test_loader)
    acc, loss = evaluate(model, test_loader)
    Console().print(f"{args.model} on {args.data}: accuracy {acc:.2%}, loss {loss:.4f}")
    return 0
