"""``--task detection|segmentation`` for train, distill, search and prune: the recipe runner's data.

A dense task reads ``--data digits_detect`` / ``digits_seg``, or your own files with ``--data-option``:
``coco`` (annotation files and image folders), ``yolo`` (``yaml=`` a dataset YAML), ``masks``
(``root=`` a folder of images and index masks), ``cityscapes`` or ``ade20k`` (``root=`` the unzipped
folder), through exactly the functions a ``task:`` recipe uses
(``netsculpt.pipeline.dense``): the same checks and refusals, the task's collate, and held-out canvases
drawn from the *training* canvases for whatever a command decides on data. The default task,
classification, leaves every command as it was.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from torch.utils.data import DataLoader

from netsculpt.errors import ConfigError


def add_task_args(p: argparse.ArgumentParser) -> None:
    from netsculpt.cli.common import parse_option

    p.add_argument(
        "--task",
        default="classification",
        help="classification (default), detection (--data digits_detect, coco or yolo) or segmentation "
        "(--data digits_seg, masks, cityscapes or ade20k); docs/tasks.md",
    )
    p.add_argument(
        "--data-option",
        dest="data_options",
        action="append",
        default=[],
        type=parse_option,
        metavar="KEY=VALUE",
        help="an option of a detection / segmentation dataset (repeatable), e.g. size=64, "
        "train_canvases=200, test_canvases=50, yaml=data.yaml (yolo), root=DIR (masks, cityscapes, ade20k); "
        "docs/data.md",
    )


def is_dense(args: argparse.Namespace, criterion: str | None = None) -> bool:
    """Whether ``--task`` is a dense one; refuses what the task cannot run (classification too:
    ``--data digits_detect`` without ``--task detection``)."""
    check_task(args, criterion)
    return args.task != "classification"


@dataclass
class DenseData:
    """A dense task and its data, as a recipe run builds them (``pipeline.run_context.dense_context``)."""

    task: Any
    train_loader: DataLoader
    test_loader: DataLoader
    shape: tuple[int, ...]
    num_classes: int
    seed: int

    def held_out(self, size: int, what: str) -> tuple[DataLoader, DataLoader]:
        """``(train, held)``: ``size`` training canvases held out (never the test split)."""
        from netsculpt.pipeline.dense import held_out_split

        return held_out_split(self.train_loader, self.task, size, self.seed, what)

    def score(self, model: Any) -> float:
        """The task's headline metric (mAP@[.5:.95], mIoU) on the test split."""
        return float(self.task.evaluate(model, self.test_loader)[self.task.metric])


@dataclass
class _Spec:
    """The part of a recipe ``netsculpt.pipeline.dense`` reads: task, seed and the data section."""

    task: str
    seed: int
    data: Any


def check_task(args: argparse.Namespace, criterion: str | None = None) -> _Spec:
    """The recipe runner's checks on ``--task``, ``--data`` and ``criterion``, as a ConfigError."""
    from netsculpt.pipeline.dense import check_task_criterion, check_task_data
    from netsculpt.pipeline.recipe import DataSection

    options = dict(getattr(args, "data_options", []))
    try:
        data = DataSection(name=args.data or "mnist5k", root=args.data_root, resize=args.resize,
                           channels=args.channels, limit=args.limit, batch_size=args.batch_size,
                           options=options)  # fmt: skip
        if check_task_data(args.task, data) and options:
            raise ValueError("--data-option is for --task detection / segmentation data")
        check_task_criterion(args.task, criterion, "--")
    except ValueError as exc:
        message = str(exc).replace("data.options.size", "--data-option size=N")
        message = message.replace("data.options", "--data-option").replace("'task: ", "'--task ")
        raise ConfigError(message.replace("add '--task", "pass '--task")) from None
    seed = getattr(args, "seed", None)
    return _Spec(args.task, 0 if seed is None else seed, data)


def dense_data(
    args: argparse.Namespace, batch_size: int | None = None, criterion: str | None = None
) -> DenseData:
    """The loaders, example shape and classes of a dense ``--task``; fills in ``args``' model defaults."""
    from netsculpt.pipeline.dense import NUM_CLASSES, data_classes, dense_loaders, example_shape
    from netsculpt.pipeline.own_data import task_options
    from netsculpt.tasks import get_task

    spec = check_task(args, criterion)
    if args.data is None:
        raise ConfigError(
            f"--task {args.task} needs --data (digits_detect, digits_seg, coco, yolo, masks, cityscapes or "
            "ade20k)"
        )
    classes = args.num_classes or data_classes(spec) or NUM_CLASSES
    task = get_task(spec.task, num_classes=classes, **task_options(spec))
    train, test = dense_loaders(spec, task, batch_size or args.batch_size or 16)
    shape = args.input_shape or example_shape(spec)
    if args.num_classes is None:
        args.num_classes = classes
    if args.in_channels is None:
        args.in_channels = shape[1]
    args.input_shape = shape
    return DenseData(task, train, test, tuple(shape), classes, spec.seed)
