"""Find the netsculpt name that rebuilds a torchvision or timm model the user built themselves.

A saved model must say how to rebuild its unpruned architecture. For ``torchvision.models.resnet18()``
or ``timm.create_model("resnet18", num_classes=10)`` nothing was recorded, so the candidates are the
builders that make that class (torchvision: the builders defined in the class's module; timm: the
architecture in the model's ``pretrained_cfg``). Each is built on the meta device (no memory) with the
class count and input channels read off the mismatching shapes (timm: also ``num_classes=0``, its
feature extractor), and accepted only when its structural fingerprint (every module's class and
settings, every state-dict shape) equals the user's model. Dropout and drop-path rates are not part of
the fingerprint; ``netsculpt.saved.rates`` records and restores them. A timm ``features_only=True`` model
(a ``FeatureListNet`` or a family's own ``*Features`` class) is tried with the feature options read off it
(:func:`feature_options`).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import itertools
import logging
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from netsculpt.models import external

log = logging.getLogger(__name__)

DEFAULT_CLASSES = 1000
DEFAULT_CHANNELS = 3


@functools.cache
def _torchvision_builders_by_module() -> dict[str, tuple[str, ...]]:
    import torchvision

    found: dict[str, list[str]] = {}
    for name in external.torchvision_names():
        module = inspect.getmodule(torchvision.models.get_model_builder(name))
        found.setdefault(getattr(module, "__name__", ""), []).append(name)
    return {module: tuple(names) for module, names in found.items()}


def candidate_names(base: dict[str, Any]) -> list[str]:
    """``torchvision:NAME`` / ``timm:NAME`` builders that may have made a model of ``base["class"]``."""
    module = base["class"].rpartition(".")[0]
    if module.startswith("torchvision.models"):
        by_module = _torchvision_builders_by_module()
        own = list(by_module.get(module, ()))
        # a class's builders may live beside it (SSD is in detection.ssd, ssdlite320_* in detection.ssdlite)
        package = module.rpartition(".")[0]
        siblings = [
            n for m, names in by_module.items() if m != module and m.rpartition(".")[0] == package
            for n in names
        ] if package != "torchvision.models" else []  # fmt: skip
        return [f"torchvision:{n}" for n in own + siblings]
    architecture = base.get("timm_architecture") or ""
    if module.startswith("timm.") and architecture and architecture in external.timm_names():
        return [f"timm:{architecture}"]
    return []


#: timm's generic feature wrappers -> the ``feature_cls`` that builds each (timm.models._builder)
_FEATURE_CLS = {"FeatureHookNet": "hook", "FeatureDictNet": "dict", "FeatureGraphNet": "fx"}
_FEATURE_CLS |= {"FeatureGetterNet": "getter", "FeatureListNet": "list"}


def feature_options(model: nn.Module) -> dict[str, Any] | None:
    """``features_only`` / ``out_indices`` of a timm feature extractor, or None for any other model.

    timm keeps no record of them but the ``FeatureInfo`` a feature extractor carries; without them the
    base was taken for a class netsculpt cannot rebuild and loading needed ``model=``."""
    info = getattr(model, "feature_info", None)
    if type(info).__name__ != "FeatureInfo" or not type(info).__module__.startswith("timm."):
        return None  # a classifier's feature_info is a plain list of dicts
    indices = getattr(info, "out_indices", None)
    if not isinstance(indices, tuple | list) or not all(type(i) is int for i in indices):
        return None
    options: dict[str, Any] = {"features_only": True, "out_indices": list(indices)}
    cls = type(model)
    if cls.__module__.startswith("timm.") and cls.__name__ in _FEATURE_CLS:
        options["feature_cls"] = _FEATURE_CLS[cls.__name__]
    return options


def _variants(name: str, base: dict[str, Any]) -> list[dict[str, Any]]:
    """Build options to try first: the library's, with a timm feature extractor's options added (the
    default ``feature_cls`` first, so the recorded options are the ones the user most likely passed)."""
    variants = external.identity_variants(name)
    features = base.get("timm_features")
    if not features or not name.startswith("timm:"):
        return variants
    plain = {k: v for k, v in features.items() if k != "feature_cls"}
    out = [{**v, **plain} for v in variants]
    if "feature_cls" in features:
        out += [{**v, **features} for v in variants]
    return out


def _build(name: str, num_classes: int | None, in_channels: int | None, **kwargs: Any) -> nn.Module | None:
    """The candidate on the meta device (no memory); when its code needs real values (RegNet works its
    widths out with tensors and ``.tolist()``), on the CPU with every parameter and buffer moved to the
    meta device as it is registered, so even ``regnet_y_128gf`` (644 M parameters) costs no memory."""
    built = _try_build(name, num_classes, in_channels, kwargs)
    return built if isinstance(built, nn.Module) else None


def _try_build(
    name: str, num_classes: int | None, in_channels: int | None, kwargs: dict[str, Any]
) -> nn.Module | Exception:
    """:func:`_build`, returning the last failure instead of None so a caller can report it."""
    from netsculpt.models.factory import create_model

    failure: Exception = RuntimeError(f"{name} was not built")
    for device in ("meta", "cpu"):
        try:
            with torch.device(device), _weights_on_meta() if device == "cpu" else contextlib.nullcontext():
                return create_model(name, num_classes=num_classes, in_channels=in_channels, **kwargs)
        except Exception as exc:  # a builder doing arithmetic on meta tensors; any failure: not this one
            log.debug("candidate %s on %s failed: %s", name, device, exc)
            failure = exc
    return failure


def meta_build(base: dict[str, Any]) -> nn.Module | None:
    """A ``kind: netsculpt`` base built without memory (None if it cannot be): to compare settings."""
    return _build(base["name"], base.get("num_classes"), base.get("in_channels"), **base.get("kwargs", {}))


@contextlib.contextmanager
def _weights_on_meta() -> Iterator[None]:
    """Parameters and buffers go to the meta device as modules register them; other tensors stay real.
    Initialisers then run on meta tensors (no work); the structure and shapes are what matter here."""
    register_parameter, register_buffer = nn.Module.register_parameter, nn.Module.register_buffer

    def parameter(self: nn.Module, name: str, param: nn.Parameter | None) -> None:
        if param is not None and param.device.type != "meta":
            param = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
        register_parameter(self, name, param)

    def buffer(self: nn.Module, name: str, tensor: torch.Tensor | None, persistent: bool = True) -> None:
        register_buffer(self, name, tensor.to("meta") if tensor is not None else None, persistent)

    nn.Module.register_parameter, nn.Module.register_buffer = parameter, buffer  # type: ignore[method-assign]
    try:
        yield
    finally:
        nn.Module.register_parameter, nn.Module.register_buffer = register_parameter, register_buffer


def _guesses(candidate: nn.Module, shapes: dict[str, list[int]]) -> tuple[set[int], set[int]]:
    """Class counts and input channels to try, read off where the default build's shapes differ."""
    classes, channels = {DEFAULT_CLASSES}, {DEFAULT_CHANNELS}
    first_conv = next((k for k, v in candidate.state_dict().items() if v.dim() >= 3), None)
    for key, value in candidate.state_dict().items():
        theirs = shapes.get(key)
        if theirs is None or list(value.shape) == theirs or len(theirs) != value.dim():
            continue
        for dim, (mine, other) in enumerate(zip(value.shape, theirs)):
            if dim == 0 and other != mine and mine % DEFAULT_CLASSES == 0 and mine <= 16 * DEFAULT_CLASSES:
                per_class = mine // DEFAULT_CLASSES  # a dense head: anchors x classes outputs
                if other % per_class == 0:
                    classes.add(other // per_class)
            if key == first_conv and dim == 1 and mine == DEFAULT_CHANNELS and other != mine:
                channels.add(other)
    return classes, channels


def identify_base(base: dict[str, Any], shapes: dict[str, list[int]]) -> dict[str, Any] | None:
    """A ``create_model`` base spec whose build has ``base["fingerprint"]``, or None if none does.

    Each candidate builder is tried as built by default, then with the structural options
    :mod:`netsculpt.models.build_options` guesses (a width multiplier, dilation, image size)."""
    from netsculpt.models.build_options import structural_guesses

    candidates = [(name, kwargs) for name in candidate_names(base) for kwargs in _variants(name, base)]
    for name, variant in candidates:
        classes = DEFAULT_CLASSES
        default = _build(name, classes, DEFAULT_CHANNELS, **variant)
        if default is None:
            continue
        if shapes and set(default.state_dict()) != set(shapes) and name.startswith("timm:"):
            classes = 0  # timm's feature extractor (num_classes=0): the same model without a head layer
            default = _build(name, classes, DEFAULT_CHANNELS, **variant)
            if default is None:
                continue
        if shapes and set(default.state_dict()) != set(shapes):
            continue  # another builder: no option tried below changes which tensors a model has
        guesses = [{**variant, **g} for g in structural_guesses(name, shapes)]
        detector = base.get("detector_options")
        if detector:  # read off the user's detector (netsculpt.models.detector_options)
            guesses.insert(0, {**variant, **detector})
        for kwargs in [variant, *guesses]:
            built = default if kwargs is variant else _try_build(name, classes, DEFAULT_CHANNELS, kwargs)
            if isinstance(built, Exception):
                if detector and kwargs is guesses[0]:
                    _warn_detector_options(name, detector, built)
                continue
            found = _match(name, kwargs, built, base, shapes, classes)
            if found:
                return found
    return None


def _warn_detector_options(name: str, options: dict[str, Any], exc: Exception) -> None:
    """The builder whose tensors match refused the options read off the detector: say so, since the model
    is then saved as its class and the only other sign is ``netsculpt.load`` asking for ``model=``."""
    log.warning(
        "%s has the same tensors as your detector but could not be built with the options read off it "
        "(%s): %s; it is saved as its class, so loading it needs model=",
        name,
        ", ".join(sorted(options)),
        exc,
    )


def _match(
    name: str,
    kwargs: dict[str, Any],
    default: nn.Module,
    base: dict[str, Any],
    shapes: dict[str, list[int]],
    built_classes: int = DEFAULT_CLASSES,
) -> dict[str, Any] | None:
    """The base spec of ``name`` built with ``kwargs`` and some class count / input channels whose
    fingerprint is the user's, or None. ``default`` was built with ``built_classes`` (0: headless)."""
    from netsculpt.spec import structure_fingerprint

    classes, channels = _guesses(default, shapes)
    if built_classes != DEFAULT_CLASSES:
        classes = {built_classes}  # no head: nothing to read a class count off
    for num_classes, in_channels in itertools.product(
        sorted(classes, key=lambda n: n != DEFAULT_CLASSES),
        sorted(channels, key=lambda n: n != DEFAULT_CHANNELS),
    ):
        same = num_classes == built_classes and in_channels == DEFAULT_CHANNELS
        model = default if same else _build(name, num_classes, in_channels, **kwargs)
        if model is not None and structure_fingerprint(model) == base["fingerprint"]:
            return {
                "kind": "netsculpt",
                "name": name,
                "num_classes": num_classes,
                "in_channels": in_channels,
                "kwargs": kwargs,
            }
    return None
