"""Checks on the first calibration batch, so a batch the model or the loss cannot use is refused with
what to pass instead, not with a torch error from deep inside the pass (``collect.stream``)."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from netsculpt.errors import PruningError, a_type

DATA_HINT = "an iterable of (inputs, labels) batches such as a DataLoader"


def check_data(data: Any) -> None:
    """One tensor iterates over its rows (single images without a batch axis): refuse it up front."""
    if isinstance(data, Tensor):
        raise PruningError(
            f"data= takes {DATA_HINT}, not one tensor of shape {tuple(data.shape)}: pass "
            "[(inputs, labels)] (or [inputs] for a criterion that needs no labels)"
        )


def check_labels(labels: Any, criterion: str) -> None:
    """A criterion that sorts images by class needs one class index per image."""
    if not isinstance(labels, Tensor) or labels.dim() != 1 or labels.is_floating_point():
        got = (
            f"a {labels.dtype} tensor of shape {tuple(labels.shape)}"
            if isinstance(labels, Tensor)
            else labels
        )
        raise PruningError(
            f"{criterion} needs one integer class index per image as labels, got {got}; for one-hot "
            "labels pass labels.argmax(1)"
        )


def check_logits(output: Any, labels: Any) -> None:
    """The default calibration loss is cross-entropy: (batch, classes) logits and class indices in range
    (or (batch, classes) probabilities)."""
    if isinstance(output, Tensor) and output.dim() == 3 and isinstance(labels, Tensor) and labels.dim() == 1:
        raise PruningError(
            f"the model returns per-token logits {tuple(output.shape)} (a language model) but the labels "
            f"{tuple(labels.shape)} are one class per sequence, so neither loss applies: for next-token "
            "cross-entropy pass token batches (ids alone, (ids, labels) with labels = ids or -100, or a "
            "dict with input_ids / attention_mask); for sequence classes use a *ForSequenceClassification "
            "head"
        )
    if not isinstance(output, Tensor) or output.dim() != 2:
        got = f"shape {tuple(output.shape)}" if isinstance(output, Tensor) else a_type(output)
        raise PruningError(
            f"this criterion back-propagates cross-entropy, so the model must return (batch, classes) "
            f"logits in eval mode; it returned {got}. Wrap the model so that forward returns the logits "
            "tensor, or pass task= for detection / segmentation"
        )
    if not isinstance(labels, Tensor):
        raise PruningError(f"labels must be a tensor of class indices, got {type(labels).__name__}")
    batch, classes = output.shape
    if labels.is_floating_point():
        if tuple(labels.shape) != (batch, classes):
            raise PruningError(
                f"float labels of shape {tuple(labels.shape)} fit neither class indices (int64, shape "
                f"({batch},)) nor class probabilities (shape ({batch}, {classes})); pass labels.long() "
                "for class indices"
            )
        return
    if labels.dim() != 1 or labels.shape[0] != batch:
        raise PruningError(f"labels of shape {tuple(labels.shape)} do not match a batch of {batch} images")
    low, high = (int(labels.min()), int(labels.max())) if labels.numel() else (0, 0)
    if low < 0 or high >= classes:
        raise PruningError(
            f"label {high if high >= classes else low} is out of range for a model with {classes} outputs: "
            f"labels are class indices in [0, {classes})"
        )


def first_batch_error(exc: Exception, inputs: Any) -> PruningError:
    """The model failed on the first calibration batch: name its shapes, keep torch's reason."""
    shapes = ", ".join(str(tuple(t.shape)) for t in inputs if isinstance(t, Tensor)) if inputs else "?"
    return PruningError(
        f"the model could not run the first calibration batch (inputs {shapes}): "
        f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}; calibration batches must be "
        "what the model takes (same channels and layout as the example input)"
    )
