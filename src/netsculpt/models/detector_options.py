"""The run-time options of a torchvision detector, read back from the built model.

A torchvision detector keeps its input size and post-processing in plain attributes, not in any tensor
shape: ``fasterrcnn_resnet50_fpn(min_size=128, box_score_thresh=0.2)`` has the default build's weights'
shapes. Recognising such a model (:mod:`netsculpt.models.identify`) therefore needs those options as
builder keyword arguments; they are read here from the user's model, recorded in the saved base as plain
numbers, and passed back to the builder on load. A guess is kept only when the built model's structural
fingerprint (which includes these attributes, :func:`netsculpt.spec.structure_fingerprint`) equals the
user's, so an option read wrongly can only fail to match, never load a different model.
"""

from __future__ import annotations

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


def detector_options(model: nn.Module) -> dict[str, Any]:
    """Builder keyword arguments that reproduce ``model``'s transform and post-processing settings
    (empty for anything that is not a torchvision detector)."""
    if not type(model).__module__.startswith("torchvision.models.detection"):
        return {}
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
