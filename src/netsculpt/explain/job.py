"""Explain one model, or a baseline and its compressed form, on the same images: the numbers and maps.

For every chosen layer and model: Grad-CAM and CHIP maps (per image, for the image's class), the CHIP
refined map across the layers, the CHIP channel independence of each channel, and the learnt class
importance of each channel. With a compressed model and the channels it kept, it also says how much of
the baseline's class importance sat on removed channels, and how similar the two models' maps are.

CHIP importance is learnt on *training* images (``calib``); maps are drawn on *test* images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from netsculpt.errors import ConfigError
from netsculpt.explain.capture import conv_layers, forward_with_maps, restored
from netsculpt.explain.channels import channel_summary, independence
from netsculpt.explain.chip_maps import Perturbation, chip_maps, learn_importance, refine
from netsculpt.explain.faithfulness import deletion_drop, random_drop
from netsculpt.explain.gradcam import grad_cam, normalise, peak_location, target_classes
from netsculpt.explain.run_order import after_activation, ran_convs, run_order

JSON_VERSION = 1
DELETION_FRACTION = 0.1  # pixels hidden by the deletion test (netsculpt.explain.faithfulness)
MAX_PER_CLASS = 32  # calibration images per class for the perturbation fit: bounds the cost


@dataclass
class Settings:
    layers: list[str] | None = None  # default: the last two conv layers of the first model
    target: str | int = "label"  # "label", "predicted", or a class index
    perturbation: Perturbation = field(default_factory=Perturbation)
    calib_option: str = "--calib-images"  # where the caller sets the calibration images, for messages


@dataclass
class ModelMaps:
    """Everything drawn for one model: maps (N, H, W) per method and layer, and per-layer numbers."""

    name: str
    predicted: torch.Tensor
    classes: torch.Tensor
    gradcam: dict[str, torch.Tensor]
    chip: dict[str, torch.Tensor]
    refined: torch.Tensor | None
    independence: dict[str, torch.Tensor]
    importance: dict[str, dict[int, np.ndarray]]
    activations: dict[str, torch.Tensor]  # the first image's maps (C, h, w) per layer


@dataclass
class Explanation:
    images: torch.Tensor
    labels: torch.Tensor
    layers: list[str]
    models: list[ModelMaps]
    kept: dict[str, torch.Tensor | None]
    numbers: dict[str, Any]


def default_layers(
    model: nn.Module, shape: tuple[int, ...] | None = None, others: Sequence[nn.Module] = ()
) -> list[str]:
    """The last two conv layers that run, each read after its activation when one follows it, found
    from one eval forward of ``shape`` (:mod:`netsculpt.explain.run_order`); without a shape, the last
    two defined (the module tree alone cannot tell training-only heads or shared activations). With
    ``others`` (the compressed models), only layers every one of them still has: a depth-pruned model
    lacks its removed blocks' convs (the maps of the baseline's last block were asked of it, and the
    run failed after every stage)."""
    own = dict(model.named_modules())
    have = [dict(o.named_modules()) for o in others]

    def shared(*names: str) -> bool:  # the same module kind under the same name in every other model
        return all(n in h and type(h[n]) is type(own[n]) for h in have for n in names)

    if shape is None:
        convs = [c for c in conv_layers(model) if shared(c)]
        if not convs:
            raise ConfigError("the model has no Conv2d layer to draw maps from; pass --layers NAME[,NAME]")
        return convs[-2:]
    seen = run_order(model, shape)
    convs = [c for c in ran_convs(model, seen) if shared(c, after_activation(model, seen, c))]
    if not convs:
        raise ConfigError(
            "no Conv2d layer ran in the model's eval forward, so there are no maps to draw; pass "
            "--layers NAME[,NAME] with modules whose output is (N, C, H, W)"
        )
    return [after_activation(model, seen, c) for c in convs[-2:]]


def _classes(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, target: str | int) -> torch.Tensor:
    with restored(model), torch.no_grad():
        logits = model(images)
    if target == "label":
        return target_classes(logits, labels)
    if target == "predicted":
        return logits.argmax(1)
    return target_classes(logits, int(target))


def _calibration(images: torch.Tensor, labels: torch.Tensor, classes: Sequence[int]) -> tuple:
    keep = torch.zeros(labels.shape[0], dtype=torch.bool)
    for c in classes:
        keep[torch.nonzero(labels == c).flatten()[:MAX_PER_CLASS]] = True
    return images[keep], labels[keep]


def explain_model(
    name: str,
    model: nn.Module,
    images: torch.Tensor,
    classes: torch.Tensor,
    calib: tuple[torch.Tensor, torch.Tensor],
    layers: Sequence[str],
    settings: Settings,
) -> ModelMaps:
    wanted = sorted({int(c) for c in classes})
    cal_x, cal_y = _calibration(*calib, wanted)
    gradcam, chip, importance, indep, acts = {}, {}, {}, {}, {}
    predicted = None
    for layer in layers:
        g = grad_cam(model, images, layer, classes)
        predicted = g.predicted
        gradcam[layer] = g.maps
        beta = learn_importance(
            model, cal_x, cal_y, layer, wanted, settings.perturbation, settings.calib_option
        )
        importance[layer] = beta
        rows = np.stack([beta[int(c)] for c in classes])
        chip[layer], _ = chip_maps(model, images, layer, rows)
        indep[layer] = independence(model, cal_x, layer)
        with restored(model), torch.no_grad():
            _, store = forward_with_maps(model, images[:1], [layer])
        acts[layer] = store[layer][0].detach()
    refined = refine([chip[layer] for layer in layers]) if len(layers) > 1 else None
    assert predicted is not None
    return ModelMaps(name, predicted, classes, gradcam, chip, refined, indep, importance, acts)


def _cosine(a: torch.Tensor, b: torch.Tensor) -> list[float]:
    a, b = a.flatten(1).double(), b.flatten(1).double()
    den = (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-12)
    return [round(float(v), 6) for v in (a * b).sum(1) / den]


def bright_mass(maps: torch.Tensor, images: torch.Tensor) -> list[float]:
    """Share of each map's mass on the image's bright half (intensity above mid-range): for digits, the
    stroke. A proxy for "looks at the object" on data whose object is the bright part."""
    gray = images.mean(1)
    lo, hi = gray.flatten(1).amin(1), gray.flatten(1).amax(1)
    fg = gray > ((lo + hi) / 2)[:, None, None]
    m = maps.double().clamp_min(0)
    total = m.flatten(1).sum(1).clamp_min(1e-12)
    return [round(float(v), 6) for v in (m * fg).flatten(1).sum(1) / total]


def _model_numbers(mm: ModelMaps, images: torch.Tensor, kept: dict[str, torch.Tensor | None]) -> dict:
    layers: dict[str, Any] = {}
    for layer, indep in mm.independence.items():
        k = kept.get(layer) if mm.name == "baseline" else None
        summary = channel_summary(indep, k)
        entry: dict[str, Any] = {
            "independence": [round(float(v), 6) for v in indep],
            "independence_summary": summary,
            "importance": {str(c): [round(float(v), 6) for v in b] for c, b in mm.importance[layer].items()},
            "gradcam": {
                "peak": peak_location(mm.gradcam[layer]),
                "bright_mass": bright_mass(mm.gradcam[layer], images),
            },
            "chip": {
                "peak": peak_location(mm.chip[layer]),
                "bright_mass": bright_mass(mm.chip[layer], images),
            },
        }
        if k is not None:  # how much of each class's importance the pruning removed
            entry["importance_removed_share"] = {
                str(c): round(float(b[~k.numpy()].sum() / max(b.sum(), 1e-12)), 6)
                for c, b in mm.importance[layer].items()
            }
        layers[layer] = entry
    out = {"predicted": mm.predicted.tolist(), "classes": mm.classes.tolist(), "layers": layers}
    if mm.refined is not None:
        out["refined"] = {"peak": peak_location(mm.refined), "bright_mass": bright_mass(mm.refined, images)}
    return out


def deletion(model: nn.Module, images: torch.Tensor, mm: ModelMaps) -> dict[str, float]:
    """Class-probability drop when each map's top pixels are hidden, and for random maps (the control)."""
    out = {}
    for method in ("gradcam", "chip"):
        for layer, maps in getattr(mm, method).items():
            out[f"{method}:{layer}"] = round(
                deletion_drop(model, images, mm.classes, maps, DELETION_FRACTION), 6
            )
    if mm.refined is not None:
        out["refined"] = round(deletion_drop(model, images, mm.classes, mm.refined, DELETION_FRACTION), 6)
    out["random"] = round(random_drop(model, images, mm.classes, DELETION_FRACTION), 6)
    return out


def explain(
    models: dict[str, nn.Module],
    images: torch.Tensor,
    labels: torch.Tensor,
    calib: tuple[torch.Tensor, torch.Tensor],
    settings: Settings | None = None,
    kept: dict[str, torch.Tensor | None] | None = None,
) -> Explanation:
    """Maps and numbers for ``models`` (``{"baseline": m}`` or ``{"baseline": m, "compressed": p}``) on
    the same ``images``. The class explained per image comes from the baseline (``settings.target``), so
    both models answer the same question. ``kept[layer]``: the baseline's channels the compressed kept."""
    settings = settings or Settings()
    kept = kept or {}
    first = next(iter(models.values()))
    shape = tuple(images[:1].shape)
    others = [m for m in models.values() if m is not first]
    layers = settings.layers or default_layers(first, shape, others)
    for name, model in models.items():
        have = dict(model.named_modules())
        missing = [layer for layer in layers if layer not in have]
        if missing:
            raise ConfigError(
                f"the {name} model has no layer {missing[0]!r} (depth pruning removes blocks); choose layers "
                f"both models have with --layers, e.g. {', '.join(default_layers(model, shape))}"
            )
    classes = _classes(first, images, labels, settings.target)
    maps = [explain_model(n, m, images, classes, calib, layers, settings) for n, m in models.items()]
    numbers: dict[str, Any] = {
        "version": JSON_VERSION,
        "layers": layers,
        "target": settings.target,
        "perturbation": vars(settings.perturbation),
        "images": {"labels": labels.tolist(), "classes": classes.tolist(), "size": list(images.shape[-2:])},
        "models": {mm.name: _model_numbers(mm, images, kept) for mm in maps},
        "deletion_fraction": DELETION_FRACTION,
        "kept": {k: (v.tolist() if v is not None else None) for k, v in kept.items()},
    }
    for mm in maps:
        numbers["models"][mm.name]["deletion"] = deletion(models[mm.name], images, mm)
    if len(maps) == 2:  # how alike the two models' maps are, per image (cosine of the maps)
        a, b = maps
        sim: dict[str, Any] = {
            f"{method}:{layer}": _cosine(getattr(a, method)[layer], getattr(b, method)[layer])
            for method in ("gradcam", "chip")
            for layer in layers
        }
        if a.refined is not None and b.refined is not None:
            sim["refined"] = _cosine(a.refined, b.refined)
        numbers["similarity"] = sim
        numbers["similarity_mean"] = {k: round(float(np.mean(v)), 6) for k, v in sim.items()}
    return Explanation(images, labels, layers, maps, kept, numbers)


__all__ = ["Explanation", "ModelMaps", "Settings", "bright_mass", "default_layers", "explain", "normalise"]
