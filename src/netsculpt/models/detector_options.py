"""The run-time options of a torchvision detector, read back from the built model.

A torchvision detector keeps its input size and post-processing in plain attributes, not in any tensor
shape: ``fasterrcnn_resnet50_fpn(min_size=128, box_score_thresh=0.2)`` has the default build's weights'
shapes. Recognising such a model (:mod:`netsculpt.models.identify`) therefore needs those options as
builder keyword arguments; they are read here from the user's model, recorded in the saved base as plain
numbers, and passed back to the builder on load. A guess is kept only when the built model's structural
fingerprint (which includes these attributes, :func:`netsculpt.spec.structure_fingerprint`) equals the
user's, so an option read wrongly can only fail to match, never load a different model.

Only the options the detector's class takes as named ``__init__`` parameters are emitted: SSD / SSDlite
derive ``min_size`` / ``max_size`` from their fixed size and pass their own to the transform, so emitting
them made every candidate build fail ("got multiple values for argument 'min_size'") and an SSD built with
``score_thresh=0.1`` was saved as its class.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

from torch import nn

# builder keyword -> (submodule path, attribute) for the two-stage R-CNN family
_RCNN = {
    "box_score_thresh": ("roi_heads", "score_thresh"),
    "box_nms_thresh": ("roi_heads", "nms_thresh"),
    "box_detections_per_img": ("roi_heads", "detections_per_img"),
    "rpn_nms_thresh": ("rpn", "nms_thresh"),
    "rpn_score_thresh": ("rpn", "score_thresh"),
}
# one-stage detectors keep them on the model itself (RetinaNet, FCOS, SSD)
_ONE_STAGE = ("score_thresh", "nms_thresh", "detections_per_img", "topk_candidates")


@functools.cache
def accepted_options(cls: type) -> frozenset[str]:
    """The keyword arguments a torchvision detector class names in its ``__init__`` or a base class's.

    Its builders pass their ``**kwargs`` on to that class, so an option it does not name either goes to
    a part the builder configures itself (SSD's transform) or is refused."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if klass.__module__.startswith("torchvision.models.detection") and "__init__" in vars(klass):
            names |= {
                p.name
                for p in inspect.signature(klass.__init__).parameters.values()
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            }
    return frozenset(names)


def detector_options(model: nn.Module) -> dict[str, Any]:
    """Builder keyword arguments that reproduce ``model``'s transform and post-processing settings
    (empty for anything that is not a torchvision detector)."""
    if not type(model).__module__.startswith("torchvision.models.detection"):
        return {}
    options = _read_options(model)
    accepted = accepted_options(type(model))
    return {key: value for key, value in options.items() if key in accepted}


def _read_options(model: nn.Module) -> dict[str, Any]:
    """Every option found on ``model``, whether or not its class takes it."""
    options: dict[str, Any] = {}
    transform = getattr(model, "transform", None)
    if transform is not None and hasattr(transform, "min_size"):
        sizes = tuple(int(s) for s in transform.min_size)
        options["min_size"] = sizes[0] if len(sizes) == 1 else sizes
        options["max_size"] = int(transform.max_size)
        options["image_mean"] = [float(v) for v in transform.image_mean]
        options["image_std"] = [float(v) for v in transform.image_std]
    for key, (path, attr) in _RCNN.items():
        owner = getattr(model, path, None)
        if owner is not None and isinstance(getattr(owner, attr, None), (int, float)):
            options[key] = getattr(owner, attr)
    rpn = getattr(model, "rpn", None)
    for kind in ("pre", "post"):
        counts = getattr(rpn, f"_{kind}_nms_top_n", None)
        if isinstance(counts, dict):
            options[f"rpn_{kind}_nms_top_n_train"] = int(counts["training"])
            options[f"rpn_{kind}_nms_top_n_test"] = int(counts["testing"])
    for attr in _ONE_STAGE:
        if isinstance(getattr(model, attr, None), (int, float)) and not isinstance(
            getattr(model, attr), bool
        ):
            options[attr] = getattr(model, attr)
    return options
