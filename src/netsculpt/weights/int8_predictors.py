"""Float predictors in an int8 detector head: the towers int8, the last convs (logits, boxes) float.

A single-stage head is towers of 3x3 convs followed by one prediction conv per output (FCOS:
``cls_logits``, ``bbox_reg``, ``bbox_ctrness``; RetinaNet: ``cls_logits``, ``bbox_reg``). The prediction
convs write the numbers decoding and NMS read, and quantizing their inputs and weights is where a score
or a box edge is rounded last; they are a small share of the head's MACs (few output channels). With
``float_predictors=True`` they are left out of the int8 graph's quantization (ONNX Runtime's
``nodes_to_exclude``, NNCF's ignored scope): plain float convs inside the same graph.

Default (None) by the measurement on a trained fcos_slim (``benchmarks/int8_detector.py``,
docs/weights.md): float on both runtimes, at no measured speed cost. On OpenVINO mAP is -0.02 pp from
float instead of -0.32; on ONNX Runtime -0.19 pp instead of -0.40 (half the loss: better than the all-int8
head it replaces, though not within 0.1 pp of float). ``False`` quantizes them too.
"""

from __future__ import annotations

from torch import nn

from netsculpt.errors import ConfigError
from netsculpt.weights.config import FilterFn, default_filter

PREDICTORS = ("cls_logits", "bbox_reg", "bbox_ctrness")  # torchvision's RetinaNet / FCOS attribute names
# the runtimes that leave chosen convs float, and where float predictors are the default: on both they
# cost mAP less at the same speed-up
FLOAT_RUNTIMES = ("onnxruntime", "openvino")


def _predictors(head: nn.Module) -> list[str]:
    """Module names (in ``head``) of its prediction convs: the convs named as RetinaNet's and FCOS's."""
    return [
        name
        for name, module in head.named_modules()
        if name.rpartition(".")[2] in PREDICTORS and isinstance(module, nn.Conv2d)
    ]


def predictor_names(head: nn.Module) -> list[str]:
    """Module names (in ``head``) of its prediction convs, refused when it has none by those names."""
    names = _predictors(head)
    if not names:
        raise ConfigError(
            f"float_predictors keeps a single-stage head's prediction convs ({', '.join(PREDICTORS)}, as in "
            f"RetinaNet and FCOS) float, but {type(head).__name__} has no conv by those names: quantize "
            "without float_predictors"
        )
    return names


def check_part(part: str | None) -> None:
    """Refuse float predictors with ``part="backbone"``: there the whole head is float already."""
    if part == "backbone":
        raise ConfigError(
            f"float_predictors keeps the int8 head's prediction convs float, but part={part!r} leaves the "
            "whole head float already: use part='backbone+head' with float_predictors, or drop it"
        )


def predictors_keep(model: nn.Module, part: str, runtime: str) -> FilterFn:
    """The filter quantizing every conv / linear of ``BackboneHead`` but the head's prediction convs
    (named ``head.<name>`` there); refused off ``part="backbone+head"`` or on a runtime without one."""
    check_part(part)
    if runtime not in FLOAT_RUNTIMES:
        raise ConfigError(
            f"float_predictors needs a runtime that leaves chosen convs float ({', '.join(FLOAT_RUNTIMES)}), "
            f"not {runtime!r}"
        )
    floats = {f"head.{name}" for name in predictor_names(model.head)}
    return lambda module, name: default_filter(module, name) and name not in floats


def float_predictors_default(model: nn.Module, part: str, runtime: str, asked: bool | None) -> bool:
    """``asked``, or where it is None, True on the runtimes in ``FLOAT_RUNTIMES`` for a head that has
    prediction convs by those names (an SSD head, all predictors, stays as the part says)."""
    if asked is not None:
        return asked
    head = getattr(model, "head", None)
    if part != "backbone+head" or runtime not in FLOAT_RUNTIMES or not isinstance(head, nn.Module):
        return False
    return bool(_predictors(head))
