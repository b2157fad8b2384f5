"""The base of a saved model (its unpruned architecture), and the consent rules for building it.

Four kinds:

* ``netsculpt``: a zoo / ``torchvision:`` / ``timm:`` name with options. The name is looked up in
  netsculpt's own registries and the libraries' registries (never imported by string), and the model is
  first built on the meta device to bound its size before any memory is spent.
* ``builder``: ``"package.module:function"``. It runs only if the caller names exactly that builder
  (``trust_builder=``, CLI ``--trust-builder``) or supplies the base model itself (``model=``).
* ``huggingface``: a ``transformers`` model class and its config (:mod:`netsculpt.saved.huggingface`),
  rebuilt only as a class transformers itself lists.
* ``user``: a class netsculpt cannot rebuild; the caller supplies the base (``model=``, or a trusted
  builder that makes it).

In every case the base's state-dict shapes are checked against the ones saved, naming the first
parameter that differs.
"""

from __future__ import annotations

import copy
import importlib
import math
import re
from typing import Any

import torch
from torch import nn
from torch.nn.parameter import is_lazy

from netsculpt.errors import CheckpointError, NetsculptError
from netsculpt.jsoncheck import check_schema
from netsculpt.saved import huggingface
from netsculpt.spec import state_shapes, tag_model

MAX_BASE_VALUES = 2_000_000_000  # 8 GB of float32: more than any torchvision / timm model's parameters
_OPTION = {
    "anyOf": [
        {"type": ["string", "boolean", "null"], "maxLength": 200},
        {"type": "number", "minimum": -1e6, "maximum": 1e6},
        {
            "type": "array",
            "maxItems": 16,
            "items": {"type": ["number", "string", "boolean", "null"], "maximum": 1e6, "maxLength": 200},
        },
    ]
}
_BUILDER = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$"
_CLASS = r"^[A-Za-z_][A-Za-z0-9_.<>]*$"

SCHEMAS: dict[str, dict[str, Any]] = {
    "netsculpt": {
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": r"^[A-Za-z0-9_.:\-]+$"},
            "num_classes": {"type": "integer", "minimum": 0, "maximum": 100_000},  # 0: timm, headless
            "in_channels": {"type": "integer", "minimum": 1, "maximum": 1024},
            "kwargs": {
                "type": "object",
                "maxProperties": 32,
                "propertyNames": {"not": {"enum": ["checkpoint", "num_classes", "in_channels"]}},
                "additionalProperties": _OPTION,
            },
        },
        "required": ["name"],
    },
    "builder": {
        "properties": {
            "builder": {"type": "string", "maxLength": 300, "pattern": _BUILDER},
            "kwargs": {"type": "object"},
        },
        "required": ["builder"],
    },
    huggingface.KIND: huggingface.SCHEMA,
    "user": {
        "properties": {"class": {"type": "string", "maxLength": 300, "pattern": _CLASS}},
        "required": ["class"],
    },
}


def validate_base(base: Any, where: str) -> None:
    kind = base.get("kind") if isinstance(base, dict) else None
    if not isinstance(kind, str) or kind not in SCHEMAS:
        raise CheckpointError(f"{where}: base.kind must be one of {', '.join(sorted(SCHEMAS))}, got {kind!r}")
    schema = SCHEMAS[kind]
    full = {
        "type": "object",
        "properties": {"kind": {"const": kind}, **schema["properties"]},
        "required": ["kind", *schema["required"]],
        "additionalProperties": False,
    }
    check_schema(base, full, where, "base")


def _create(base: dict[str, Any]) -> nn.Module:
    from netsculpt.models import create_model

    return create_model(
        base["name"],
        num_classes=base.get("num_classes"),
        in_channels=base.get("in_channels"),
        **base.get("kwargs", {}),
    )


def _check_size(base: dict[str, Any], shapes: dict[str, list[int]] | None, where: str) -> None:
    """Build on the meta device first: a file cannot make netsculpt allocate an enormous model."""
    try:
        with torch.device("meta"):
            model = _create(base)
    except NetsculptError as exc:
        raise CheckpointError(f"{where}: base {base['name']!r}: {exc}") from None
    except Exception as exc:  # the builder computes with tensor values (e.g. RegNet): meta cannot run it
        if base.get("kwargs"):
            raise CheckpointError(
                f"{where}: base {base['name']!r} with options {sorted(base['kwargs'])} cannot be "
                f"size-checked before it is built ({type(exc).__name__}); pass model=<the unpruned model> "
                "to load it"
            ) from None
        return  # the library's own default architecture: its size is the library's, bounded
    # a lazy layer's size is the one the file records (shaped_ below builds it so): counted as that
    lazy = {k: (shapes or {}).get(k, []) for k, t in model.state_dict().items() if is_lazy(t)}
    values = sum(t.numel() for k, t in model.state_dict().items() if k not in lazy)
    values += sum(math.prod(shape) for shape in lazy.values() if _is_shape(shape))
    if values > MAX_BASE_VALUES:
        raise CheckpointError(
            f"{where}: base {base['name']!r} would hold {values:,} values; the limit is {MAX_BASE_VALUES:,}"
        )


def _is_shape(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in value
    )


def _input_size(module: nn.Module, prefix: str, shapes: dict[str, list[int]]) -> tuple[int, ...] | None:
    """A (meta) input shape from which ``module``'s own ``initialize_parameters`` sizes it as saved."""
    shape = shapes.get(prefix + "weight") or shapes.get(prefix + "running_mean")
    if not _is_shape(shape) or not shape:
        return None
    if isinstance(module, nn.Linear):
        return (1, shape[-1])
    if isinstance(module, nn.modules.conv._ConvNd) and len(shape) >= 3:
        channels = shape[0] if module.transposed else shape[1] * module.groups
        return (1, channels, *[1] * (len(shape) - 2))
    if isinstance(module, nn.modules.batchnorm._NormBase):
        return (1, shape[0], 1)
    return None


def _lazy_tensors(module: nn.Module, prefix: str) -> dict[str, str]:
    """``module``'s own uninitialised parameters and buffers: their state-dict keys by attribute name."""
    own = (*module.named_parameters(recurse=False), *module.named_buffers(recurse=False))
    return {name: prefix + name for name, tensor in own if is_lazy(tensor)}


def shaped_(
    model: nn.Module,
    shapes: dict[str, list[int]] | None,
    where: str,
    fix: str = "pass model=<the unpruned model, run once on an input> to netsculpt.load",
) -> None:
    """Size a rebuilt base's lazy layers (a builder using ``nn.LazyLinear``) as the file records, each by
    its own ``initialize_parameters`` on a meta input (so ``in_features`` and the like are set too), or,
    for a lazy class netsculpt does not know, by torch's own load hook from zeros of the saved shapes. The
    model's forward never runs: the edits' replay traces the base, which a shapeless layer cannot take,
    and the saved weights then replace the fresh ones. The global generator is left where it was."""
    from torch.nn.modules.lazy import LazyModuleMixin

    for name, module in model.named_modules():
        if not isinstance(module, LazyModuleMixin) or not module.has_uninitialized_params():
            continue
        prefix = f"{name}." if name else ""
        size = _input_size(module, prefix, shapes or {})
        keys = _lazy_tensors(module, prefix)
        unsaved = [key for key in keys.values() if not _is_shape((shapes or {}).get(key))]
        if size is None and (unsaved or not keys):
            raise CheckpointError(
                f"{where}: the base model's lazy layer {name!r} ({type(module).__name__}) has no saved shape "
                f"to be built with{f' ({unsaved[0]})' if unsaved else ''}; {fix}"
            )
        with torch.random.fork_rng(devices=[]):  # reset_parameters draws weights the file replaces
            if size is not None:
                module.initialize_parameters(torch.empty(size, device="meta"))
            else:  # LazyModuleMixin's load hook materialises each tensor at the shape it is given
                zeros = {attr: torch.zeros((shapes or {})[key]) for attr, key in keys.items()}
                module.load_state_dict(zeros, strict=False)


def check_shapes(model: nn.Module, shapes: dict[str, list[int]] | None, where: str) -> None:
    """Refuse a base whose state dict differs from the saved one, naming the first difference."""
    if shapes is None:
        return  # written before shapes were recorded: the edits and weights are checked instead
    mine = state_shapes(model)
    for key, shape in shapes.items():
        if key not in mine:
            raise CheckpointError(f"{where}: the base model has no {key!r} (saved with shape {shape})")
        if mine[key] != shape:
            raise CheckpointError(
                f"{where}: the base model's {key!r} has shape {mine[key]}, the saved model's base has {shape}"
            )
    extra = [key for key in mine if key not in shapes]
    if extra:
        raise CheckpointError(f"{where}: the base model has {extra[0]!r}, which the saved model's base lacks")


def _other_class(model: nn.Module, base: dict[str, Any]) -> str:
    """Why ``model=`` may not fit: it is another class than the one saved (ultralytics' ``YOLO`` object
    for the ``DetectionModel`` inside it, whose names lack the ``model.`` prefix)."""
    cls = type(model)
    given, saved = f"{cls.__module__}.{cls.__qualname__}", base.get("class")
    if base.get("kind") == huggingface.KIND:  # recorded by its name in transformers
        given = cls.__name__
    if not saved or saved == given:
        return ""
    return (
        f". The folder was saved from a model of class {saved} and model= is of class {given}: pass an "
        f"unpruned {saved.rpartition('.')[2]} "
        "(a network held inside an object, as ultralytics' YOLO(...).model is, is passed as that network)"
    )


def _import_builder(builder: str, where: str) -> Any:
    module_name, _, fn_name = builder.partition(":")
    if not re.fullmatch(_BUILDER, builder):
        raise CheckpointError(f"trust_builder must look like 'package.module:function', got {builder!r}")
    try:
        return getattr(importlib.import_module(module_name), fn_name)
    except (ImportError, AttributeError) as exc:
        raise CheckpointError(f"{where}: cannot import the trusted builder {builder!r}: {exc}") from None


def _call_builder(builder: str, kwargs: dict[str, Any], where: str) -> nn.Module:
    model = _import_builder(builder, where)(**kwargs)
    if not isinstance(model, nn.Module):
        raise CheckpointError(
            f"{where}: builder {builder!r} returned {type(model).__name__}, not an nn.Module"
        )
    return model


def _unregistered(base: dict[str, Any]) -> bool:
    """A zoo name (no ``torchvision:`` / ``timm:`` prefix) this process has not registered: a model added
    with ``register_model`` in the user's own module, which a new process has not imported."""
    from netsculpt.models import MODELS

    return ":" not in base["name"] and base["name"] not in MODELS


def _build_unregistered(
    base: dict[str, Any], shapes: dict[str, list[int]] | None, where: str, trust_builder: str | None
) -> nn.Module:
    """The base of a model registered with ``register_model`` outside netsculpt. The file names only a
    registry key, never code: the builder runs only when the caller names it (``trust_builder``).
    Importing it usually registers the name (the decorator runs), and then the registry builds it, size
    checked on the meta device like any zoo model; otherwise the builder is called with the saved options."""
    name = base["name"]
    if trust_builder is None:
        raise CheckpointError(
            f"{where}: base {name!r} is not a registered model in this process. A model added with "
            f"register_model is known only after the module that registers it is imported: import it "
            f"before netsculpt.load, or pass trust_builder='package.module:{name}' naming its builder "
            "(CLI: --trust-builder), or model=<the unpruned model> to replay the saved edits onto it"
        )
    _import_builder(trust_builder, where)  # the module the caller named: its register_model runs
    if not _unregistered(base):
        _check_size(base, shapes, where)
        return _create(base)
    options = {k: base[k] for k in ("num_classes", "in_channels") if base.get(k) is not None}
    return _call_builder(trust_builder, {**options, **base.get("kwargs", {})}, where)


def _refusal(base: dict[str, Any], where: str) -> CheckpointError:
    if base["kind"] == "builder":
        return CheckpointError(
            f"{where} asks to run the builder {base['builder']!r}. netsculpt runs no code a file names: if "
            f"you trust it, load with trust_builder={base['builder']!r} (CLI: --trust-builder "
            f"{base['builder']}), or pass model=<the unpruned model> to replay the saved edits onto it"
        )
    name = base["class"].rpartition(".")[2]
    if huggingface.is_remote_code(base["class"]):
        return CheckpointError(
            f"{where} was saved from {name}, a Hugging Face model whose code came from the Hub "
            "(trust_remote_code), which netsculpt never runs: pass model=<the unpruned model, built as you "
            "trust it> to netsculpt.load"
        )
    return CheckpointError(
        f"{where} was saved from a model of class {base['class']!r}, which netsculpt cannot rebuild: pass "
        f"model={name}(...) (the unpruned architecture) to netsculpt.load, or trust_builder="
        "'package.module:function' naming code that builds it (CLI: --trust-builder)"
    )


def build_base(
    base: dict[str, Any],
    shapes: dict[str, list[int]] | None,
    where: str,
    *,
    model: nn.Module | None = None,
    trust_builder: str | None = None,
) -> nn.Module:
    """The unpruned model a validated base describes, or the caller's ``model`` (a copy) after checks."""
    if model is not None:
        if not isinstance(model, nn.Module):
            raise CheckpointError(f"model= must be an nn.Module, got {type(model).__name__}")
        mine = copy.deepcopy(model)  # a lazy model (the user's builder, not yet run) takes the saved shapes
        shaped_(mine, shapes, where, "run it once on an input (model(example)) to materialise them, then "
                "pass it to ns.load again")  # fmt: skip
        try:
            check_shapes(mine, shapes, where)
        except CheckpointError as exc:
            raise CheckpointError(f"{exc}{_other_class(model, base)}") from None
        return tag_model(mine, base)
    kind = base["kind"]
    if kind == "netsculpt" and _unregistered(base):
        built = _build_unregistered(base, shapes, where, trust_builder)
    elif kind == "netsculpt":
        _check_size(base, shapes, where)
        built = _create(base)
    elif kind == huggingface.KIND:
        built = huggingface.build(base, where)
    elif trust_builder is None or (kind == "builder" and trust_builder != base["builder"]):
        error = _refusal(base, where)
        if trust_builder is not None:
            error = CheckpointError(f"{error} (trust_builder={trust_builder!r} names a different builder)")
        raise error
    else:
        kwargs = base.get("kwargs", {}) if kind == "builder" else {}
        built = _call_builder(trust_builder, kwargs, where)
    shaped_(built, shapes, where)
    check_shapes(built, shapes, where)
    return tag_model(built, base)
