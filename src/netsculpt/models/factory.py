"""Build any model by name: zoo entries, ``torchvision:NAME`` and ``timm:NAME``.

One entry point keeps recipes and the CLI simple (a model is a string) and puts the checks every caller
needs in one place: valid sizes, known names with suggestions, and safe checkpoint loading.
"""

from __future__ import annotations

import inspect
import operator
import os
from typing import Any

from torch import nn

from netsculpt import checks
from netsculpt.errors import ConfigError, UnknownNameError
from netsculpt.models import external
from netsculpt.models.checkpoint import load_checkpoint
from netsculpt.models.registry import MODELS, ModelSpec
from netsculpt.spec import tag_model

# torchvision and timm classifiers are ImageNet ones: 1000 classes of RGB images unless told otherwise;
# torchvision detectors default to COCO's 91 and segmenters to VOC's 21 (external.DENSE_NUM_CLASSES)
EXTERNAL_NUM_CLASSES = 1000
EXTERNAL_IN_CHANNELS = 3


def _positive(value: int, what: str, minimum: int = 1) -> int:
    """Accept any integer type (numpy ints from configs too) but not bools or floats."""
    try:
        number = operator.index(value)
    except TypeError:
        number = minimum - 1
    if isinstance(value, bool) or number < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ConfigError(f"{what} must be {kind}, got {value!r}")
    return number


def _model_name(name: object, where: str) -> str:
    """Refuse a non-string name at the door (it failed as ``.startswith`` on None before)."""
    if not isinstance(name, str):
        raise checks.refuse(
            "name",
            name,
            "a model name: a zoo name (ns.list_models()), 'torchvision:NAME' or 'timm:NAME'",
            where,
        )
    return name


def _zoo_spec(name: str) -> ModelSpec:
    if name in MODELS:
        return MODELS.get(name)
    message = MODELS.unknown_message(name)
    prefix, sep, arch = name.partition(":")
    if sep:
        message += f" {prefix + ':'!r} is not a model source: use 'torchvision:NAME' or 'timm:NAME'."
        if arch in external.torchvision_names():
            message += f" torchvision has {arch!r}: 'torchvision:{arch}'."
    elif name in external.torchvision_names():
        message += f" torchvision has it: use 'torchvision:{name}'."
    else:
        message += " Other models: 'torchvision:NAME' or 'timm:NAME'."
    raise UnknownNameError(message)


def check_model_name(name: str) -> None:
    """Raise UnknownNameError (with the close names) unless ``name`` is a zoo, ``torchvision:`` or
    ``timm:`` model; nothing is built."""
    prefix, sep, arch = name.partition(":")
    if sep and prefix == "torchvision":
        external.check_torchvision_name(arch)
    elif sep and prefix == "timm":
        external.check_timm_name(arch)
    else:
        _zoo_spec(name)


def _check_kwargs(spec: ModelSpec, kwargs: dict[str, Any]) -> None:
    """Turn a mistyped builder option into a message listing the options the model takes."""
    try:
        inspect.signature(spec.builder).bind(0, 0, **kwargs)
    except TypeError:
        params = list(inspect.signature(spec.builder).parameters)[2:]
        unknown = sorted(set(kwargs) - set(params))
        raise ConfigError(
            f"model {spec.name!r} does not take option(s) {', '.join(unknown)}; "
            f"it takes: {', '.join(params) or 'no options'}"
        ) from None


def create_model(
    name: str,
    *,
    num_classes: int | None = None,
    in_channels: int | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build model ``name`` with random weights, or with the state dict in ``checkpoint``.

    ``num_classes`` / ``in_channels`` default to the zoo entry's values (1000 and 3 for torchvision and
    timm models). Extra keyword arguments go to the model's builder (e.g. ``shortcut="A"``).
    """
    _model_name(name, "ns.create_model")
    if checkpoint is not None:
        checks.path(checkpoint, "checkpoint", "ns.create_model")
    if name.startswith("torchvision:") or name.startswith("timm:"):
        prefix, _, arch = name.partition(":")
        default = EXTERNAL_NUM_CLASSES
        if prefix == "torchvision":
            default = external.DENSE_NUM_CLASSES.get(external.torchvision_kind(arch), default)
        # timm's num_classes=0 is a feature extractor: the head's linear layer becomes an Identity
        classes = _positive(
            default if num_classes is None else num_classes, "num_classes", 0 if prefix == "timm" else 1
        )
        channels = _positive(EXTERNAL_IN_CHANNELS if in_channels is None else in_channels, "in_channels")
        build = external.build_torchvision if prefix == "torchvision" else external.build_timm
        model = build(arch, classes, channels, **kwargs)
    else:
        spec = _zoo_spec(name)
        classes = _positive(spec.num_classes if num_classes is None else num_classes, "num_classes")
        channels = _positive(spec.in_channels if in_channels is None else in_channels, "in_channels")
        _check_kwargs(spec, kwargs)
        model = spec.builder(classes, channels, **kwargs)
    tag_model(
        model,
        {
            "kind": "netsculpt",
            "name": name,
            "num_classes": classes,
            "in_channels": channels,
            "kwargs": kwargs,
        },
    )
    if checkpoint is not None:
        options = "".join(f", {k}={v!r}" for k, v in kwargs.items())
        load_checkpoint(
            model, checkpoint, f"model {name!r} (num_classes={classes}, in_channels={channels}{options})"
        )
    return model


def model_input_shape(
    name: str, *, in_channels: int | None = None, image_size: int | None = None
) -> tuple[int, ...]:
    """A batch-of-one example input shape ``(1, C, H, W)`` on which model ``name`` runs as built.

    ``image_size`` replaces every spatial size (a model built for another size may need a matching
    option, e.g. ``input_size=`` for lenet5 or ``image_size=`` for torchvision ViTs).
    """
    _model_name(name, "ns.model_input_shape")
    if name.startswith("torchvision:"):
        channels = _positive(EXTERNAL_IN_CHANNELS if in_channels is None else in_channels, "in_channels")
        sample: tuple[int, ...] = external.torchvision_sample_shape(name.partition(":")[2], channels)
    elif name.startswith("timm:"):
        channels = _positive(EXTERNAL_IN_CHANNELS if in_channels is None else in_channels, "in_channels")
        sample = external.timm_sample_shape(name.partition(":")[2], channels)
    else:
        spec = _zoo_spec(name)
        channels = _positive(spec.in_channels if in_channels is None else in_channels, "in_channels")
        sample = (channels, *spec.input_shape[1:])
    if image_size is not None:
        size = _positive(image_size, "image_size")
        sample = (sample[0], *(size for _ in sample[1:]))
    return (1, *sample)
