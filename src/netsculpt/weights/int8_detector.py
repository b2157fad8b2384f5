"""int8 for torchvision-style detectors: the backbone (body + FPN), and the head of a single-stage one,
run on an int8 runtime; anchors, decoding and NMS stay float.

A GeneralizedRCNN / RetinaNet / FCOS / SSD detector takes a list of images, which no int8 path takes, but
inside it ``model.transform`` batches them into one padded tensor and ``model.backbone`` maps that tensor
to a dict of feature maps: a tensor-in, tensors-out module. A single-stage detector's ``model.head``
(RetinaNet, FCOS, SSD) maps the list of feature maps to per-level logits and box regressions: tensors in
and out too, and on a trained fcos_slim 54 % of the eager time against the backbone's 23 % (its 4-conv
towers run on every pyramid level; ``benchmarks/detector_profile.py``). ``part="backbone"`` quantizes
the backbone, ``"backbone+head"`` both as one graph (:class:`BackboneHead`) on ONNX Runtime, OpenVINO /
NNCF or PT2E, through the same paths as any model; the transform, anchor generation, box decoding and
NMS stay float torch (box arithmetic and sorting, not int8 work). Two-stage detectors (Faster / Mask
R-CNN) have no such head: their RPN and RoI heads take proposals and stay float.

Calibration feeds the backbone what the detector itself gives it: a forward pre-hook on the user's
``model.backbone`` records its input during float passes over the calibration images (the hook is
removed after, the model is put back as found). The graphs are fixed at the size the transform gave the
calibration images (apart from the batch); another size is refused naming the fix.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from netsculpt.errors import CheckpointError, ConfigError, DataError
from netsculpt.fileio import write_json
from netsculpt.runtimes.artefacts import DETECTOR_NAME

FORMAT, VERSION = "netsculpt-int8-detector", 1
PARTS = ("backbone", "backbone+head")
SUPPORTED = (
    "int8 for detectors quantizes the backbone of torchvision-style detectors (GeneralizedRCNN: Faster / "
    "Mask R-CNN, RetinaNet, FCOS, SSD), which batch the images with model.transform (a "
    "GeneralizedRCNNTransform) and map that tensor to feature maps with model.backbone"
)


class Int8Backbone(nn.Module):
    """A detector's backbone (with ``part="backbone+head"``, and its head) as an int8 artefact, at the one
    input size its graph was made for.

    ``artefact``: an ``OnnxModule`` / ``OpenVinoModule`` / ``ProgramModule`` returning the float backbone's
    dict of feature maps, or :class:`BackboneHead`'s ``(features, head outputs)``: the features are
    returned (anchors are laid out from their sizes), the head outputs held for the detector's
    :class:`Int8Head`. A PT2E program runs under ``torch.compile`` with weight freezing (its int8 kernels
    exist only there; set for its compilations only, as the compile runtime does)."""

    def __init__(
        self, artefact: nn.Module, input_size: tuple[int, int, int], out_channels: Any, part: str = "backbone"
    ) -> None:
        super().__init__()
        self.artefact = artefact
        self.input_size = tuple(input_size)
        self.out_channels = out_channels  # torchvision's heads read it when built; kept for code that does
        self.part = part
        self._pending: tuple[list[torch.Tensor], Any] | None = None

    @property
    def runtime(self) -> str:
        return str(self.artefact.deployed_runtime)

    def forward(self, x: torch.Tensor) -> Any:
        if tuple(x.shape[1:]) != self.input_size:
            c, h, w = self.input_size
            raise ConfigError(
                f"this int8 detector's backbone ({self.runtime}) takes the batched images at {c}x{h}x{w} "
                f"(its graph is fixed at the size the transform gave the calibration images, apart from the "
                f"batch), but the transform gave {'x'.join(map(str, x.shape[1:]))}: resize the images so the "
                "transform gives that size (same-sized images, or a transform with fixed_size / min_size = "
                "max_size), or quantize again with calibration images of the size you run"
            )
        out = self._run(x)
        if self.part == "backbone":
            return out
        features, head_outputs = out
        self._pending = (list(features.values()), head_outputs)
        return features

    def _run(self, x: torch.Tensor) -> Any:
        if self.runtime != "torch":
            return self.artefact(x)
        import torch._inductor.config as inductor_config

        if getattr(self, "_compiled", None) is None:  # not a child module: an exported one refuses .eval()
            # static shapes: a detector's batches vary (the last one, single images), and the quantized
            # conv lowering of inductor failed on a dynamic batch ("expected ... stride"; torch 2.14)
            compiled = torch.compile(self.artefact.module_, backend="inductor", dynamic=False)
            object.__setattr__(self, "_compiled", compiled)
        with inductor_config.patch(freezing=True):
            return self._compiled(x)


class BackboneHead(nn.Module):
    """What ``part="backbone+head"`` exports as one graph: the features and the head's outputs on them
    (one runtime call, and the features reach the head's convs without leaving the int8 graph)."""

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x: torch.Tensor) -> tuple[Any, Any]:
        features = self.backbone(x)
        if isinstance(features, torch.Tensor):  # as the detectors wrap a single map
            features = OrderedDict([("0", features)])
        return features, self.head(list(features.values()))


class Int8Head(nn.Module):
    """A single-stage detector's head whose convs ran inside its ``Int8Backbone``'s graph: it returns the
    outputs that graph computed for the features it is handed, which must be the ones the backbone just
    returned (as the detector's forward passes them)."""

    def __init__(self, backbone: Int8Backbone) -> None:
        super().__init__()
        object.__setattr__(self, "_backbone", backbone)  # not a child: the detector owns the backbone

    def forward(self, features: list[torch.Tensor]) -> Any:
        pending, self._backbone._pending = self._backbone._pending, None
        if (
            pending is None
            or len(pending[0]) != len(features)
            or any(a is not b for a, b in zip(pending[0], features))
        ):
            raise ConfigError(
                "this int8 detector's head runs inside its backbone's int8 graph (part='backbone+head'), so "
                "it only returns the head outputs for the features its backbone has just returned; call the "
                "detector on images (or model.backbone(x) right before model.head), or quantize with "
                "part='backbone' to keep a float head that takes any features"
            )
        return pending[1]


def detector_backbone(model: nn.Module) -> nn.Module:
    """``model.backbone``, refused (naming what is supported) unless ``model`` batches its images with a
    ``GeneralizedRCNNTransform`` and has a ``backbone`` module taking that tensor."""
    from torchvision.models.detection.transform import GeneralizedRCNNTransform

    name = type(model).__name__
    transform, backbone = getattr(model, "transform", None), getattr(model, "backbone", None)
    if isinstance(backbone, Int8Backbone):
        raise ConfigError(f"{name}'s backbone is int8 already ({backbone.runtime}); quantize its float model")
    if not isinstance(transform, GeneralizedRCNNTransform) or not isinstance(backbone, nn.Module):
        has = (
            f"its transform is {type(transform).__name__}"
            if transform is not None
            else "it has no 'transform' module"
        )
        has += "" if isinstance(backbone, nn.Module) else " and no 'backbone' module"
        raise ConfigError(
            f"cannot quantize {name}: {SUPPORTED}; {has}. Wrap your detector's tensor-in part in such a "
            "module, or keep the detector float"
        )
    return backbone


def detector_part(model: nn.Module, part: str | None) -> str:
    """``part`` checked against ``model``; None: the widest part it has (``"backbone+head"`` when it has a
    tensor-in ``model.head``, as RetinaNet, FCOS and SSD do, else ``"backbone"``)."""
    head = getattr(model, "head", None)
    single_stage = isinstance(head, nn.Module) and not isinstance(head, Int8Head)
    if part is None:
        return PARTS[1] if single_stage else PARTS[0]
    if part not in PARTS:
        raise ConfigError(f"int8 detector part {part!r} is unknown; choose one of {', '.join(PARTS)}")
    if part == "backbone+head" and not single_stage:
        raise ConfigError(
            f"part='backbone+head' quantizes a single-stage detector's model.head (RetinaNet, FCOS, SSD: "
            f"feature maps in, per-level logits and boxes out), but {type(model).__name__} has no 'head' "
            "module (a two-stage detector's RPN and RoI heads take proposals): use part='backbone'"
        )
    return part


def _images(batch: Any) -> list[torch.Tensor]:
    """A detection batch's images: ``(images, targets)`` as the task's collate gives, or the images."""
    from netsculpt.tasks.detection import _images as task_images

    labelled = isinstance(batch, list | tuple) and len(batch) == 2 and isinstance(batch[1], list | tuple)
    if labelled and all(isinstance(t, dict) for t in batch[1]):
        batch = batch[0]
    return task_images(batch)


def backbone_inputs(model: nn.Module, data: Iterable[Any], batches: int) -> list[torch.Tensor]:
    """The tensors ``model.transform`` hands ``model.backbone`` for the first ``batches`` batches of
    ``data``, recorded by a forward pre-hook during float passes (removed after; the model left as found).

    Refuses batches the transform brings to different sizes: one int8 graph takes one size."""
    from netsculpt.graph.snapshot import left_as_found
    from netsculpt.modes import eval_mode

    backbone = detector_backbone(model)
    seen: list[torch.Tensor] = []

    def record(module: nn.Module, args: tuple[Any, ...]) -> None:
        seen.append(args[0].detach().cpu().float().clone())

    handle = backbone.register_forward_pre_hook(record)
    try:
        found = left_as_found(model, "while its backbone inputs were recorded")
        with found, eval_mode(model), torch.no_grad():
            for batch in itertools.islice(data, batches):
                model(_images(batch))
    finally:
        handle.remove()
    if not seen:
        raise DataError("the calibration data yielded no batch; pass a loader with at least one batch")
    sizes = sorted({tuple(x.shape[1:]) for x in seen})
    if len(sizes) > 1:
        raise DataError(
            f"{type(model).__name__}'s transform gave the calibration batches at {len(sizes)} sizes "
            f"({', '.join('x'.join(map(str, s)) for s in sizes[:4])}); an int8 backbone graph takes one size "
            "apart from the batch: calibrate on same-sized images (or a transform with fixed_size), the "
            "size you will run"
        )
    return seen


def assemble(
    model: nn.Module, artefact: nn.Module, input_size: tuple[int, int, int], part: str = "backbone"
) -> nn.Module:
    """A copy of the float ``model`` whose backbone (and head, for ``"backbone+head"``) is ``artefact``;
    ``model`` itself is not changed."""
    backbone = detector_backbone(model)
    replaced = ("backbone", "head") if detector_part(model, part) == "backbone+head" else ("backbone",)
    int8 = copy.copy(model)  # shallow first: the float parts are not deep-copied only to be dropped
    int8._modules = dict(model._modules)
    for name in replaced:
        int8._modules[name] = None
    int8 = copy.deepcopy(int8)
    int8.backbone = Int8Backbone(artefact, input_size, getattr(backbone, "out_channels", None), part)
    if part == "backbone+head":
        int8.head = Int8Head(int8.backbone)
    return int8.eval()


def is_int8_detector(model: nn.Module) -> bool:
    return isinstance(getattr(model, "backbone", None), Int8Backbone)


def quantize_detector_on(
    runtime: str,
    model: nn.Module,
    inputs: list[torch.Tensor],
    out_dir: str | os.PathLike[str],
    config: Any = None,
    part: str | None = None,
    float_predictors: bool | None = None,
) -> nn.Module:
    """int8 ``model``'s ``part`` on ``runtime`` from recorded backbone ``inputs``; the artefact and
    ``int8_detector.json`` are written in ``out_dir`` (the json last: a folder with it is complete).
    ``float_predictors``: the head's prediction convs stay float in the graph (None: where measured to pay,
    :mod:`.int8_predictors`)."""
    from netsculpt.weights.int8_predictors import float_predictors_default, predictors_keep
    from netsculpt.weights.int8_select import quantize_on
    from netsculpt.weights.quantize import check_float32

    check_float32(model)
    backbone = detector_backbone(model)
    part = detector_part(model, part)
    float_predictors = float_predictors_default(model, part, runtime, float_predictors)
    keep = predictors_keep(model, part, runtime) if float_predictors else None
    graph = backbone if part == "backbone" else BackboneHead(backbone, model.head)
    out = Path(out_dir)
    (out / DETECTOR_NAME).unlink(missing_ok=True)
    artefact = quantize_on(runtime, graph, inputs[0][:1], inputs, out, config, keep)
    size = tuple(int(s) for s in inputs[0].shape[1:])
    record = {"format": FORMAT, "version": VERSION, "runtime": runtime, "input_size": list(size)}
    record["part"] = part
    if float_predictors:
        record["float_predictors"] = True
    write_json(out / DETECTOR_NAME, record)
    return assemble(model, artefact, size, part)  # type: ignore[arg-type]


def quantize_detector(
    model: nn.Module,
    calibration_data: Iterable[Any],
    out_dir: str | os.PathLike[str],
    *,
    runtime: str = "onnxruntime",
    calibration_batches: int = 8,
    config: Any = None,
    part: str | None = None,
    float_predictors: bool | None = None,
) -> nn.Module:
    """int8 of a torchvision-style detector: a new model whose backbone (``part="backbone"``) or backbone
    and head (``"backbone+head"``; default for detectors with a ``model.head``) run on ``runtime``'s int8
    kernels; transform, anchors, decoding and NMS stay float. ``calibration_data`` yields ``(images,
    targets)`` batches (the detection task's collate) or lists of images. ``model`` is not changed.
    ``float_predictors``: with ``"backbone+head"``, keep the head's prediction convs float (None: on
    OpenVINO, where that held mAP within 0.1 pp of float; docs/weights.md)."""
    from netsculpt.weights.int8_predictors import predictors_keep

    part = detector_part(model, part)  # refused before the calibration passes
    if float_predictors:
        predictors_keep(model, part, runtime)
    inputs = backbone_inputs(model, calibration_data, calibration_batches)
    return quantize_detector_on(runtime, model, inputs, out_dir, config, part, float_predictors)


def read_record(folder: Path) -> dict[str, Any]:
    """``int8_detector.json`` in ``folder``, checked field by field."""
    path = folder / DETECTOR_NAME
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"cannot read {str(path)!r}: {type(exc).__name__}: {exc}") from None
    size = data.get("input_size") if isinstance(data, dict) else None
    ok = (
        isinstance(data, dict)
        and data.get("format") == FORMAT
        and data.get("version") == VERSION
        and set(data) - {"part", "float_predictors"} == {"format", "version", "runtime", "input_size"}
        and data.get("part", "backbone") in PARTS  # no part: written before the head could be int8
        and data.get("float_predictors", False) in (True, False)
        and isinstance(size, list)
        and len(size) == 3
        and all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size)
    )
    if not ok:
        raise CheckpointError(
            f"{str(path)!r} is not a {FORMAT} version {VERSION} record (format, version, runtime, "
            f"input_size [C, H, W], part: {' or '.join(PARTS)}); rerun the quantize stage to write it again"
        )
    return data


def load_int8_detector(folder: str | os.PathLike[str], float_model: nn.Module) -> nn.Module:
    """The int8 detector written in ``folder``, rebuilt around ``float_model`` (the float detector it was
    quantized from: its transform, anchors and decoding, and its head unless that is int8 too; its own
    backbone is not used)."""
    from netsculpt.runtimes.artefacts import load_artefact

    folder = Path(folder)
    record = read_record(folder)
    artefact = load_artefact(folder, graph_only=True)
    if artefact is None:
        raise CheckpointError(f"{str(folder)!r} has {DETECTOR_NAME} but no int8 backbone graph beside it")
    part = record.get("part", "backbone")
    return assemble(float_model, artefact, tuple(record["input_size"]), part)  # type: ignore[arg-type]


def int8_detector_size(model: nn.Module) -> int:
    """Bytes of an int8 detector: its int8 artefact's files plus the float32 rest (the head when float)."""
    rest = sum(t.numel() * t.element_size() for t in itertools.chain(model.parameters(), model.buffers()))
    return int(model.backbone.artefact.size_bytes) + rest


def compare_detector_int8(
    model: nn.Module,
    example: Any,
    batches: list[Any],
    calib_batches: int,
    out_dir: Path,
    task: Any,
    runtimes: tuple[str, ...],
    threads: int,
    runs: int,
    part: str | None = None,
) -> tuple[dict[str, nn.Module], list[dict[str, Any]], float]:
    """``compare_int8`` for a detector: each runtime's int8 ``part`` calibrated on the backbone inputs
    of the first ``calib_batches`` batches, every candidate scored by the task's mAP on the batches after
    them and timed whole (transform to NMS) on PyTorch eager against the float detector."""
    from netsculpt.weights.int8_select import _score, _time_rows, candidate_rows

    detector_backbone(model)  # an unsupported detector is refused, not a row of errors per runtime
    part = detector_part(model, part)
    held = batches[calib_batches:]
    inputs = backbone_inputs(model, batches[:calib_batches], calib_batches)
    float_score = _score(task, model, held, False)
    models, rows = candidate_rows(
        runtimes,
        task.metric,
        lambda runtime: quantize_detector_on(
            runtime, model, inputs, out_dir / "candidates" / runtime, part=part
        ),
        lambda q: _score(task, q, held, False),
        int8_detector_size,
    )
    if models:
        _time_rows(rows, model, models, example, threads, runs)
    return models, rows, float_score
