"""Dropout and stochastic-depth rates of a saved model: recorded on save, set back on load.

They act only in training and change no tensor, so the structural fingerprint leaves them out (a model
built with ``dropout=0.5`` still matches its builder) and a rebuilt base has the builder's defaults.
``netsculpt.json`` therefore lists, per module, the rate attributes the saved model had, and loading
sets them back. Loading only sets plain values on attributes that already exist, or swaps a
dropout-like module for another class of the fixed list below (a timm ``DropPath`` where the default
build has ``Identity``): nothing a file names is imported or run.
"""

from __future__ import annotations

import importlib
from typing import Any

from torch import nn

from netsculpt.errors import NetsculptWarning, warn_user
from netsculpt.spec import is_rate

#: dropout-like classes by qualified name -> (module, class, constructor arguments); only these are
#: recorded whole and only these are ever built on load
TRAIN_ONLY: dict[str, tuple[str, str, dict[str, Any]]] = {
    **{
        f"torch.nn.modules.dropout.{name}": ("torch.nn", name, {})
        for name in ("Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout")
    },
    "torch.nn.modules.linear.Identity": ("torch.nn", "Identity", {}),
    "torchvision.ops.stochastic_depth.StochasticDepth": (
        "torchvision.ops",
        "StochasticDepth",
        {"p": 0.0, "mode": "row"},
    ),
    "timm.layers.drop.DropPath": ("timm.layers", "DropPath", {}),
    "timm.layers.drop.DropBlock2d": ("timm.layers", "DropBlock2d", {}),
}

_VALUE = {"type": ["number", "boolean", "string", "null"], "maxLength": 50, "minimum": -1e6, "maximum": 1e6}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "maxProperties": 100_000,
    "propertyNames": {"maxLength": 300, "pattern": r"^[A-Za-z0-9_.]*$"},
    "additionalProperties": {
        "type": "object",
        "properties": {
            "class": {"enum": list(TRAIN_ONLY)},
            "attrs": {"type": "object", "maxProperties": 16, "additionalProperties": _VALUE},
        },
        "required": ["attrs"],
        "additionalProperties": False,
    },
}


def _qualname(module: nn.Module) -> str:
    return f"{type(module).__module__}.{type(module).__qualname__}"


def _plain(value: Any) -> bool:
    return isinstance(value, bool | int | float | str | type(None))


def record_rates(model: nn.Module) -> dict[str, dict[str, Any]]:
    """Every dropout-like module (class and settings) and every other module's rate attributes."""
    record: dict[str, dict[str, Any]] = {}
    for name, module in model.named_modules():
        qualname = _qualname(module)
        if qualname in TRAIN_ONLY:
            attrs = {k: v for k, v in vars(module).items() if not k.startswith("_") and _plain(v)}
            attrs.pop("training", None)
            record[name] = {"class": qualname, "attrs": attrs}
        else:
            attrs = {k: v for k, v in vars(module).items() if is_rate(k, v)}
            if attrs:
                record[name] = {"attrs": attrs}
    return record


def differing_rates(model: nn.Module, base: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The entries of :func:`record_rates` that a rebuild of ``base`` would not reproduce by itself.

    Only those are written, so a model with its builder's rates saves a file older netsculpt reads
    (it refuses an unknown ``rates`` field). A base that cannot be built here keeps every entry: a
    ``builder`` / ``user`` base runs code only a trusting loader may run, and it builds its own defaults
    (a ``classifier.p`` set to 0.1 after a builder made 0.5 used to reload as 0.5)."""
    record = record_rates(model)
    if not record or base.get("kind") != "netsculpt":
        return record
    from netsculpt.models.identify import meta_build

    built = meta_build(base)
    if built is None:
        return record
    default = record_rates(built)
    return {name: entry for name, entry in record.items() if default.get(name) != entry}


def _build(qualname: str) -> nn.Module:
    module_name, class_name, kwargs = TRAIN_ONLY[qualname]
    return getattr(importlib.import_module(module_name), class_name)(**kwargs)


def _fits(current: Any, value: Any) -> bool:
    """Same kind of value: a rate stays a number, a flag a flag, a mode a string."""
    if isinstance(current, bool) or isinstance(value, bool):
        return isinstance(current, bool) and isinstance(value, bool)
    if isinstance(current, int | float):
        return isinstance(value, int | float)
    return type(current) is type(value)


def apply_rates(model: nn.Module, record: dict[str, dict[str, Any]] | None, where: str) -> nn.Module:
    """Set the recorded rates back on the rebuilt ``model``; entries that do not fit are named in a warning
    (a ``model=`` base of the user's own may differ)."""
    misfits: list[str] = []
    for name, entry in (record or {}).items():
        try:
            module = model.get_submodule(name)
        except AttributeError:
            misfits.append(name)
            continue
        wanted = entry.get("class")
        if wanted is not None and _qualname(module) != wanted:
            if _qualname(module) not in TRAIN_ONLY or not name:
                misfits.append(name)  # only a dropout-like module is ever swapped for another
                continue
            module = _build(wanted)
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent), child, module)
        for attr, value in entry["attrs"].items():
            if attr in vars(module) and _fits(vars(module)[attr], value):
                setattr(module, attr, value)
            else:
                misfits.append(f"{name}.{attr}" if name else attr)
    if misfits:
        warn_user(
            f"{where}: dropout / drop-path settings saved for {', '.join(misfits[:5])} do not fit the "
            "rebuilt model and were left at its defaults; set them yourself before training it",
            NetsculptWarning,
        )
    return model
