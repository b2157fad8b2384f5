"""``netsculpt quantize --task detection|segmentation``: int8 as the recipe's quantize stage makes it.

The data comes through :mod:`netsculpt.cli.task_data` (the recipe runner's canvases, collate and
refusals), calibration from the first training batches as the stage calibrates, and the task's metric
(mAP@[.5:.95], mIoU) on the test split, float against int8. A detector's int8 part is its backbone, or
backbone and head (``--part``, :mod:`netsculpt.weights.int8_detector`), so the float detector is saved in
``--out``/model beside the graph: ``load_artefact(out)`` rebuilds the int8 detector from both, as a
resumed recipe does. ``--runtime auto`` is the stage's ``runtime: auto`` (:mod:`.quantize_auto`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console
from torch import nn

from netsculpt.cli.common import example, forward_or_explain, load_model
from netsculpt.errors import ConfigError


def check_dense_options(args: argparse.Namespace) -> None:
    """Refuse, before any data is built, the options that only mean something for classifiers."""
    if args.mixed:
        raise ConfigError(
            f"--mixed scores layers by classification accuracy; it does not run --task {args.task} yet: "
            "remove --mixed (the whole model, or a detector's whole backbone, goes int8)"
        )
    if args.method != "minmax" and args.runtime != "onnxruntime":
        raise ConfigError(f"--method is ONNX Runtime's calibration; --runtime {args.runtime} takes none")
    for flag, value in (("--part", args.part), ("--float-predictors", args.float_predictors)):
        if value is not None and args.task != "detection":
            raise ConfigError(
                f"{flag} chooses a detector's int8 part; --task {args.task} goes int8 whole: drop {flag}"
            )
    if args.float_predictors:
        from netsculpt.weights.int8_predictors import check_part

        check_part(args.part)  # before the data and the model are built
    if args.float_predictors is not None and args.runtime == "auto":
        raise ConfigError(
            "--float-predictors chooses for one runtime; --runtime auto compares each runtime at its default "
            "(float predictors on both): drop it, or pass --runtime onnxruntime / openvino"
        )


def run_dense_quantize(args: argparse.Namespace) -> int:
    """int8 of a detector's backbone or a whole segmenter on ``--runtime``, scored by the task's metric."""
    from netsculpt.cli.task_data import dense_data
    from netsculpt.tasks.metrics import metric_label

    check_dense_options(args)
    dense = dense_data(args, batch_size=args.batch_size or 16)
    model, shape = load_model(args)
    model.eval()
    _check_model(model, dense.task.name, shape)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.runtime == "auto":
        return _quantize_auto(args, model, dense, shape, out)
    int8, size = _quantize(args, model, dense, shape, out)
    label = metric_label(dense.task.metric)
    float_score, int8_score = dense.score(model), dense.score(int8)
    part = f"{int8.backbone.part} " if dense.task.name == "detection" else ""
    Console().print(
        f"int8 {part}({args.runtime}, {args.calibration_batches} calibration batches of training canvases): "
        f"test {label} {float_score:.2%} -> {int8_score:.2%} ({(int8_score - float_score) * 100:+.2f} pp); "
        f"int8 files {size:,} B; saved to {out}"
    )
    return 0


def _quantize_auto(
    args: argparse.Namespace, model: nn.Module, dense: Any, shape: tuple[int, ...], out: Path
) -> int:
    """``--runtime auto``: the stage's selection on the training batches; the kept model's test metric."""
    from netsculpt.cli.quantize_auto import select
    from netsculpt.runtimes.artefacts import load_artefact
    from netsculpt.tasks.metrics import metric_label

    info = select(args, model, example(shape), dense.train_loader, dense.task, out)
    if not info["int8"]:
        return 0
    if dense.task.name == "detection":
        _save_float_detector(args, model, dense, shape, out)
    int8 = load_artefact(out)
    label = metric_label(dense.task.metric)
    Console().print(
        f"int8 ({info['runtime']}): test {label} {dense.score(model):.2%} -> {dense.score(int8):.2%}; "
        f"saved to {out}"
    )
    return 0


def _save_float_detector(
    args: argparse.Namespace, model: nn.Module, dense: Any, shape: tuple[int, ...], out: Path
) -> None:
    """The float detector ``load_artefact(out)`` rebuilds the int8 one around, in ``out``/model."""
    from netsculpt.io import save

    extra = {"input_shape": list(shape), "task": dense.task.name, "source": args.model}
    save(model, out / "model", extra=extra)


def _check_model(model: nn.Module, task: str, shape: tuple[int, ...]) -> None:
    """A detector int8 cannot take is refused naming what it takes; a segmenter must run its input."""
    if task == "detection":
        from netsculpt.weights.int8_detector import detector_backbone

        detector_backbone(model)
        return
    what = f"the model cannot run an input of shape {tuple(shape)}"
    forward_or_explain(model, example(shape), what, "match the canvases with --data-option size=N")


def _quantize(
    args: argparse.Namespace, model: nn.Module, dense: Any, shape: tuple[int, ...], out: Path
) -> tuple[nn.Module, int]:
    """The int8 model written in ``out`` (as the recipe stage writes it) and its files' bytes."""
    from netsculpt.runtimes.artefacts import remove_artefacts
    from netsculpt.weights.quantize import Int8Config

    remove_artefacts(out)  # another runtime's artefact left in --out would be loaded instead
    config = (
        Int8Config(calibration_batches=args.calibration_batches, method=args.method)
        if args.runtime == "onnxruntime"
        else None
    )
    if dense.task.name == "detection":
        from netsculpt.weights.int8_detector import quantize_detector

        int8 = quantize_detector(model, dense.train_loader, out, runtime=args.runtime, part=args.part,
                                 calibration_batches=args.calibration_batches, config=config,
                                 float_predictors=args.float_predictors)  # fmt: skip
        _save_float_detector(args, model, dense, shape, out)
        return int8, int(int8.backbone.artefact.size_bytes)
    from netsculpt.weights.int8_runtimes import calibration_batches
    from netsculpt.weights.int8_select import quantize_on

    calibration = calibration_batches(dense.train_loader, args.calibration_batches)
    int8 = quantize_on(args.runtime, model, example(shape), calibration, out, config)
    return int8, int(int8.size_bytes)
