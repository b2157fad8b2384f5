"""Channel-wise interpretation maps: Grad-CAM, CHIP class-discriminative maps (network perturbation +
sparse regression), CHIP channel independence, and which channels a pruning kept.

``netsculpt explain MODEL_OR_RUN_DIR --data NAME --out DIR`` draws them before and after compression;
see docs/explain.md.
"""

from netsculpt.explain.capture import capture, conv_layers, default_layer
from netsculpt.explain.channels import independence, kept_channels, masked_copy
from netsculpt.explain.chip_maps import Perturbation, chip_maps, learn_importance, refine
from netsculpt.explain.gradcam import ClassMaps, grad_cam, normalise, peak_location

__all__ = [
    "ClassMaps",
    "Perturbation",
    "capture",
    "chip_maps",
    "conv_layers",
    "default_layer",
    "grad_cam",
    "independence",
    "kept_channels",
    "learn_importance",
    "masked_copy",
    "normalise",
    "peak_location",
    "refine",
]
