"""Models from torchvision (``torchvision:NAME``) and timm (``timm:NAME``), always randomly initialised.

Nothing here downloads weights: a trained model is loaded with ``create_model(..., checkpoint=PATH)``.
"""

from __future__ import annotations

import difflib
import functools
from typing import Any

from torch import nn

from netsculpt.errors import ConfigError, UnknownNameError
from netsculpt.models.adapt import replace_input_conv

# torchvision classification models run at 224x224 except inception_v3, which needs at least 75x75 and
# is designed for 299x299. Most others also run on smaller images (alexnet needs >= 63, MaxViT and the
# ViTs only their built size, 224 unless built with input_size= / image_size=).
TORCHVISION_IMAGE_SIZE: dict[str, int] = {"inception_v3": 299}
DEFAULT_IMAGE_SIZE = 224

# Defaults that make every torchvision model return plain logits: with auxiliary heads, googlenet and
# inception_v3 return a namedtuple in train mode. init_weights=True is their current default, stated so
# torchvision does not warn that it may change.
_TORCHVISION_DEFAULTS: dict[str, dict[str, Any]] = {
    "googlenet": {"aux_logits": False, "init_weights": True},
    "inception_v3": {"aux_logits": False, "init_weights": True},
}


def identity_variants(name: str) -> list[dict[str, Any]]:
    """Build options to try when recognising a torchvision model a user built: none, and the library's
    own defaults where netsculpt's differ (``torchvision.models.googlenet()`` has auxiliary heads)."""
    ours = _TORCHVISION_DEFAULTS.get(name.removeprefix("torchvision:"), {})
    return [{}] + ([{"aux_logits": True}] if ours.get("aux_logits") is False else [])


_NO_DOWNLOAD = "netsculpt builds models with random weights (nothing is downloaded); pass checkpoint=PATH"


@functools.cache
def _torchvision_classifiers() -> tuple[str, ...]:
    import torchvision

    return tuple(torchvision.models.list_models(module=torchvision.models))


@functools.cache
def _torchvision_dense() -> dict[str, str]:
    """Detection and segmentation models by name -> "detection" / "segmentation"."""
    import torchvision
    from torchvision.models import detection, segmentation

    found = {n: "detection" for n in torchvision.models.list_models(module=detection)}
    found.update({n: "segmentation" for n in torchvision.models.list_models(module=segmentation)})
    return found


# COCO's 91 category ids (with background) and Pascal VOC's 21 classes: torchvision's own defaults
DENSE_NUM_CLASSES = {"detection": 91, "segmentation": 21}
# a detector resizes every image to its own min_size (800 px by default) inside forward, so the example
# only needs to be a plausible image; segmenters are fully convolutional and run at any size
DENSE_IMAGE_SIZE = {"detection": 320, "segmentation": 224}


def torchvision_kind(name: str) -> str:
    """ "classification", "detection" or "segmentation" for a torchvision model name."""
    return _torchvision_dense().get(name, "classification")


@functools.cache
def _timm_all() -> tuple[str, ...]:
    try:
        import timm
    except ImportError:
        return ()
    return tuple(timm.list_models())


def torchvision_names(prefixed: bool = False) -> list[str]:
    """Every torchvision classification, detection and segmentation model name."""
    names = [*_torchvision_classifiers(), *_torchvision_dense()]
    return [f"torchvision:{n}" if prefixed else n for n in names]


def timm_names(prefixed: bool = False) -> list[str]:
    """Every timm architecture name, or an empty list when timm is not installed."""
    return [f"timm:{n}" if prefixed else n for n in _timm_all()]


def _close(name: str, choices: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=5, cutoff=0.6)
    return f" Did you mean: {', '.join(close)}?" if close else ""


def _torchvision_unbuilt() -> set[str]:
    """torchvision's video and optical-flow models: real names netsculpt does not build (5-D clips, frame
    pairs), which a user passes as modules instead."""
    import torchvision
    from torchvision.models import optical_flow, video

    return {n for m in (video, optical_flow) for n in torchvision.models.list_models(module=m)}


def check_torchvision_name(name: str) -> None:
    if name in _torchvision_unbuilt():
        raise UnknownNameError(
            f"'torchvision:{name}' is a video or optical-flow model, which netsculpt does not build by name: "
            f"build it yourself (torchvision.models.get_model({name!r}, weights=None)) and pass the module "
            "to ns.trace / ns.prune with a clip (1, 3, frames, H, W) or, for RAFT, (frame1, frame2) "
            "(docs/models.md)"
        )
    if name not in _torchvision_classifiers() and name not in _torchvision_dense():
        raise UnknownNameError(
            f"unknown model 'torchvision:{name}': torchvision has no classification, detection or "
            f"segmentation model {name!r}.{_close(name, torchvision_names())} "
            "See netsculpt.models.list_models('torchvision:*', include_external=True)."
        )


def _timm():
    try:
        import timm
    except ImportError:
        raise ConfigError("timm:NAME models need timm: pip install 'netsculpt[timm]'") from None
    return timm


def check_timm_name(name: str) -> None:
    """Accept ``ARCH`` or ``ARCH.TAG`` (the tag picks the pretrained config, hence the input size)."""
    timm = _timm()
    arch, _, tag = name.partition(".")
    if not timm.is_model(arch):
        raise UnknownNameError(
            f"unknown model 'timm:{name}': timm has no architecture {arch!r}.{_close(arch, _timm_all())} "
            "See netsculpt.models.list_models('timm:*', include_external=True)."
        )
    if tag and name not in timm.list_pretrained(f"{arch}.*"):
        tags = ", ".join(timm.list_pretrained(f"{arch}.*")) or "none"
        raise UnknownNameError(f"unknown model 'timm:{name}': {arch!r} has no tag {tag!r}; its tags: {tags}")


def torchvision_sample_shape(name: str, in_channels: int = 3) -> tuple[int, int, int]:
    """One sample's ``(C, H, W)`` at which ``torchvision:NAME`` runs as built by default."""
    check_torchvision_name(name)
    kind = torchvision_kind(name)
    size = TORCHVISION_IMAGE_SIZE.get(name, DENSE_IMAGE_SIZE.get(kind, DEFAULT_IMAGE_SIZE))
    return (in_channels, size, size)


def timm_sample_shape(name: str, in_channels: int = 3) -> tuple[int, ...]:
    """One sample's ``(C, H, W)`` from the model's pretrained config (its default input size)."""
    check_timm_name(name)
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(name)
    size = tuple(cfg.input_size) if cfg is not None and cfg.input_size else (3, 224, 224)
    return (in_channels, *size[1:])


def _refuse_download(kwargs: dict[str, Any], *keys: str) -> None:
    for key in keys:
        if kwargs.get(key):
            raise ConfigError(f"{key}={kwargs[key]!r} is not supported: {_NO_DOWNLOAD}")
        kwargs.pop(key, None)


def _built_sample_shape(name: str, kwargs: dict[str, Any]) -> tuple[int, int, int]:
    """The RGB sample shape a model runs at, honouring ViT ``image_size=`` and MaxViT ``input_size=``."""
    size: int | tuple[int, int] = TORCHVISION_IMAGE_SIZE.get(name, DEFAULT_IMAGE_SIZE)
    size = kwargs.get("image_size", kwargs.get("input_size", size))
    height, width = (size, size) if isinstance(size, int) else size
    return (3, height, width)


def build_torchvision(name: str, num_classes: int, in_channels: int, **kwargs: Any) -> nn.Module:
    """``torchvision.models.get_model(NAME, weights=None, num_classes=...)``, then adapt the input conv."""
    import torchvision

    check_torchvision_name(name)
    _refuse_download(kwargs, "weights", "pretrained", "weights_backbone")
    kwargs = {**_TORCHVISION_DEFAULTS.get(name, {}), **kwargs}
    if torchvision_kind(name) == "detection":
        if in_channels != 3:
            raise ConfigError(
                f"torchvision:{name} normalises 3-channel (RGB) images inside forward; in_channels must "
                f"be 3, got {in_channels}"
            )
        # a detector normalises inside forward, so its images are RGB; it takes a batch tensor (N, 3, H, W)
        # or a list of (3, H, W) images; eval mode returns
        # boxes after NMS, train mode losses (netsculpt traces and measures in eval mode)
        try:
            return torchvision.models.get_model(
                name, weights=None, weights_backbone=None, num_classes=num_classes, **kwargs
            )
        except TypeError as exc:  # an option this detector fixes itself (SSD sets its own min_size)
            options = ", ".join(sorted(kwargs)) or "none"
            raise ConfigError(
                f"torchvision:{name} does not take these options ({options}): {exc}; SSD / SSDlite fix "
                "their own image size (no min_size / max_size)"
            ) from None
    if torchvision_kind(name) == "segmentation":  # no normalisation inside: the first conv adapts
        kwargs = {"weights_backbone": None, **kwargs}
    model = torchvision.models.get_model(name, weights=None, num_classes=num_classes, **kwargs)
    if in_channels != 3:
        replace_input_conv(model, in_channels, _built_sample_shape(name, kwargs), f"torchvision:{name}")
    return model


def build_timm(name: str, num_classes: int, in_channels: int, **kwargs: Any) -> nn.Module:
    """``timm.create_model(NAME, pretrained=False, ...)``; timm adapts ``in_chans`` itself."""
    timm = _timm()
    check_timm_name(name)
    _refuse_download(kwargs, "pretrained", "checkpoint_path")
    return timm.create_model(name, pretrained=False, num_classes=num_classes, in_chans=in_channels, **kwargs)
