"""The model registry: what a zoo entry is and how one is added.

A zoo model is a builder function plus the facts a pipeline needs before building it (the example input
shape, the default number of classes and input channels). Keeping those facts beside the builder lets
``model_input_shape`` answer without constructing the network, and lets tests iterate every entry.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from netsculpt.checks import instance
from netsculpt.registry import Registry

Builder = Callable[..., nn.Module]

EXTERNAL_PREFIXES = ("torchvision:", "timm:")


@dataclass(frozen=True)
class ModelSpec:
    """One registered zoo model.

    Attributes:
        name: registry key, e.g. ``"resnet20_cifar"``.
        input_shape: one sample's shape ``(C, H, W)`` at the default ``in_channels`` (no batch dimension).
        num_classes: default number of output logits.
        in_channels: default number of input channels (equals ``input_shape[0]``).
        builder: ``builder(num_classes, in_channels, **kwargs) -> nn.Module``.
    """

    name: str
    input_shape: tuple[int, ...]
    num_classes: int
    in_channels: int
    builder: Builder


MODELS: Registry[ModelSpec] = Registry("model")


def register_model(
    name: str, *, input_shape: tuple[int, ...], num_classes: int = 10, in_channels: int = 3
) -> Callable[[Builder], Builder]:
    """Decorator: register ``builder(num_classes, in_channels, **kwargs)`` under ``name``.

    ``input_shape`` is one sample's shape ``(C, H, W)``; its first entry must equal ``in_channels`` so the
    two facts cannot disagree.
    """
    input_shape = tuple(int(d) for d in input_shape)
    if len(input_shape) < 2 or input_shape[0] != in_channels:
        raise ValueError(
            f"model {name!r}: input_shape must be one sample's shape (C, ...) with C == in_channels "
            f"({in_channels}), got {input_shape}"
        )
    if any(name.startswith(p) for p in EXTERNAL_PREFIXES):
        raise ValueError(f"model names starting with {EXTERNAL_PREFIXES} are reserved for external models")

    def add(builder: Builder) -> Builder:
        MODELS.register(name, ModelSpec(name, input_shape, num_classes, in_channels, builder))
        return builder

    return add


def list_models(pattern: str | None = None, include_external: bool = False) -> list[str]:
    """Sorted model names, optionally filtered by a shell-style ``pattern`` (``"resnet*"``).

    With ``include_external`` the list also holds every ``torchvision:NAME`` classification model and,
    when timm is installed, every ``timm:NAME``; the pattern is matched against the prefixed name.
    """
    instance(
        pattern,
        str,
        "pattern",
        "a shell-style pattern such as 'resnet*', or None",
        "ns.list_models",
        optional=True,
    )
    names = MODELS.names()
    if include_external:
        from netsculpt.models import external

        names += external.torchvision_names(prefixed=True) + external.timm_names(prefixed=True)
    return [n for n in names if pattern is None or fnmatch.fnmatch(n, pattern)]
