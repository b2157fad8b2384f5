"""Structural build options of torchvision and timm builders, guessed so such models are recognised.

``torchvision.models.mobilenet_v2(width_mult=0.5)`` or ``resnet50(replace_stride_with_dilation=[False,
True, True])`` is not the default build of any name, so recognising it (:mod:`netsculpt.models.identify`)
needs the option too. Every option here keeps the state-dict *keys* of the default build (it changes
shapes or layer settings only), so the caller only tries them for a builder whose keys already match, and
every guess is accepted only when the built model's structural fingerprint equals the user's. The guesses
are plain data, recorded in the saved model and passed back to the builder on load: no code is named.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

# widths the torchvision papers and common fine-tuning recipes use; the first conv's width adds its own
WIDTH_MULTS = (0.25, 0.35, 0.5, 0.75, 1.25, 1.3, 1.4, 1.5, 2.0)


def _builder_module(name: str) -> str:
    import inspect

    import torchvision

    try:
        builder = torchvision.models.get_model_builder(name.removeprefix("torchvision:"))
    except ValueError:
        return ""
    return getattr(inspect.getmodule(builder), "__name__", "")


def _widths(shapes: dict[str, list[int]], first_conv: str, base_width: int) -> list[float]:
    """Common width multipliers, led by the one the first conv's output width implies."""
    out = list(WIDTH_MULTS)
    first = shapes.get(first_conv)
    if first:
        implied = round(first[0] / base_width, 4)
        out = [implied] + [w for w in out if w != implied]
    return [w for w in out if w != 1.0]


def _resnet(shapes: dict[str, list[int]]) -> list[dict[str, Any]]:
    combos = [list(c) for c in itertools.product((False, True), repeat=3) if any(c)]
    return [{"replace_stride_with_dilation": c} for c in combos]


def _mobilenet_v2(shapes: dict[str, list[int]]) -> list[dict[str, Any]]:
    return [{"width_mult": w} for w in _widths(shapes, "features.0.0.weight", 32)]


def _mobilenet_v3(shapes: dict[str, list[int]]) -> list[dict[str, Any]]:
    widths = [1.0, *_widths(shapes, "features.0.0.weight", 16)]
    out = []
    for width, reduced, dilated in itertools.product(widths, (False, True), (False, True)):
        options: dict[str, Any] = {}
        if width != 1.0:
            options["width_mult"] = width
        if reduced:
            options["reduced_tail"] = True
        if dilated:
            options["dilated"] = True
        if options:
            out.append(options)
    return out


def _vision_transformer(shapes: dict[str, list[int]]) -> list[dict[str, Any]]:
    """The image size the position embedding was built for: (size / patch)^2 patches + the class token."""
    embedding, patch = shapes.get("encoder.pos_embedding"), shapes.get("conv_proj.weight")
    if not embedding or not patch or len(embedding) != 3 or len(patch) != 4:
        return []
    side = math.isqrt(max(embedding[1] - 1, 0))
    return [{"image_size": side * patch[2]}] if side * side == embedding[1] - 1 and side else []


_BY_MODULE = {
    "torchvision.models.resnet": _resnet,
    "torchvision.models.mobilenetv2": _mobilenet_v2,
    "torchvision.models.mobilenetv3": _mobilenet_v3,
    "torchvision.models.vision_transformer": _vision_transformer,
}


def _timm(shapes: dict[str, list[int]]) -> list[dict[str, Any]]:
    """timm's common structural kwargs: ``img_size`` (read off ``pos_embed``: patches plus 0-2 prefix
    tokens), ``global_pool`` and ``output_stride``. A model that does not take one fails to build and is
    skipped by the caller."""
    out: list[dict[str, Any]] = []
    embedding, patch = shapes.get("pos_embed"), shapes.get("patch_embed.proj.weight")
    if embedding and patch and len(embedding) == 3 and len(patch) == 4:
        for prefix in (1, 0, 2):
            side = math.isqrt(max(embedding[1] - prefix, 0))
            if side and side * side == embedding[1] - prefix:
                out.append({"img_size": side * patch[2]})
    out += [{"global_pool": pool} for pool in ("max", "avgmax", "catavgmax")]
    out += [{"output_stride": stride} for stride in (16, 8)]
    return out


def structural_guesses(name: str, shapes: dict[str, list[int]]) -> list[dict[str, Any]]:
    """Non-default build options of ``name`` to try for a model whose state-dict shapes are ``shapes``."""
    if name.startswith("timm:"):
        return _timm(shapes)
    if not name.startswith("torchvision:"):
        return []
    guess = _BY_MODULE.get(_builder_module(name))
    return guess(shapes) if guess else []
