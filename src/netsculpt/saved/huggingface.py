"""Hugging Face ``transformers`` models as a saved base: a class name and its config, nothing to run.

``ns.save`` records a model of a ``transformers`` class as ``{"kind": "huggingface", "class":
"BertForSequenceClassification", "config": {...}}`` (``config.to_json_string()``, what ``save_pretrained``
writes) when a meta-device build of that class from that config has the model's structural fingerprint
(a model changed after it was built is saved as its class, as before). ``ns.load`` rebuilds it only as
``getattr(transformers, class)`` when that is a ``PreTrainedModel`` listed in transformers' own auto-model
mappings: library code, never code the file names (a ``trust_remote_code`` model's class lives outside
``transformers`` and is refused, with that reason). The config is data: ``config_class.from_dict``, nested
configs (``backbone_config``, ``text_config``) included, each with its own attention kernel when they
differ (DETR's ResNet backbone runs eager inside an SDPA model).
netsculpt imports ``transformers`` only here, only when such a model is saved or loaded.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import re
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from netsculpt.errors import CheckpointError
from netsculpt.saved.hf_pretrained import to_pretrained_config

__all__ = ["KIND", "SCHEMA", "build", "describe", "identify", "is_hf_model", "to_pretrained_config"]

KIND = "huggingface"
MAX_MODULES = 200_000  # as many as a state dict may have entries (saved.document.MAX_STATE_ENTRIES)
MAX_BASE_VALUES = 2_000_000_000  # as for netsculpt's own bases (saved.bases)

# attention / experts kernels named as "org/repo" are downloaded from the Hub and run: only local names
_IMPLEMENTATION = r"^[A-Za-z0-9_|]+$"
_KERNEL = {"type": "string", "maxLength": 100, "pattern": _IMPLEMENTATION}
# a backbone named as "org/repo" or "hf-hub:..." makes transformers (or timm) fetch its config from the Hub
_LOCAL_NAME = r"^[A-Za-z0-9_.\-]+$"

SCHEMA: dict[str, Any] = {
    "properties": {
        "class": {"type": "string", "maxLength": 200, "pattern": r"^[A-Za-z_][A-Za-z0-9_]*$"},
        "config": {"type": "object", "maxProperties": 2000},
        "attn_implementation": {
            "anyOf": [
                _KERNEL,
                {  # per nested config, by its path ("" the model's own): DETR's ResNet backbone runs eager
                    "type": "object",
                    "maxProperties": 64,
                    "propertyNames": {"maxLength": 200, "pattern": r"^([A-Za-z_][A-Za-z0-9_]*(\.|$))*$"},
                    "additionalProperties": _KERNEL,
                },
            ]
        },
    },
    "required": ["class", "config"],
}


def is_hf_model(model: nn.Module) -> bool:
    """A model of a class defined in ``transformers`` (duck-typed: the library is not imported)."""
    return type(model).__module__.startswith("transformers.") and hasattr(
        getattr(model, "config", None), "to_json_string"
    )


def is_remote_code(class_path: str) -> bool:
    """A class loaded from the Hub with ``trust_remote_code=True`` (in ``transformers_modules``)."""
    return class_path.startswith("transformers_modules.")


def describe(model: nn.Module) -> dict[str, Any] | None:
    """What rebuilds ``model`` (class name, config as JSON, attention kernel), or None if not an HF model."""
    if not is_hf_model(model):
        return None
    config = model.config
    try:
        data = json.loads(config.to_json_string(use_diff=False))
    except (TypeError, ValueError):
        return None  # a config holding something JSON cannot: saved as its class
    out: dict[str, Any] = {"class": type(model).__name__, "config": data}
    attn = attention_kernels(config)
    if any(not re.match(_IMPLEMENTATION, kernel) for kernel in attn.values()):
        return None  # a Hub kernel: saved as its class, loaded onto model= (netsculpt runs no Hub code)
    if len(set(attn.values())) == 1 and "" in attn:
        out["attn_implementation"] = attn[""]  # one kernel throughout: the form older files have
    elif attn:
        out["attn_implementation"] = attn
    return out


def _sub_configs(config: Any) -> Iterator[tuple[str, Any]]:
    """The configs nested in ``config`` (DETR's ``backbone_config``, CLIP's ``text_config`` /
    ``vision_config``, an encoder-decoder's ``encoder`` / ``decoder``), by attribute name."""
    for key in getattr(type(config), "sub_configs", None) or {}:
        sub = getattr(config, key, None)
        if hasattr(sub, "to_json_string"):
            yield key, sub


def attention_kernels(config: Any, path: str = "", depth: int = 0) -> dict[str, str]:
    """The attention kernel of ``config`` and of each config nested in it, by path (``""`` its own,
    ``"backbone_config"``): not in the JSON, and a model built from a config picks one per sub-model
    (DETR runs SDPA, its ResNet backbone eager), while eager and SDPA differ in the last bits."""
    kernels = {}
    attn = getattr(config, "_attn_implementation", None)
    if isinstance(attn, str):
        kernels[path] = attn
    if depth < 8:
        for key, sub in _sub_configs(config):
            kernels.update(attention_kernels(sub, f"{path}.{key}" if path else key, depth + 1))
    return kernels


def _set_kernels(config: Any, kernels: str | dict[str, str], where: str) -> None:
    """Give each (nested) config the saved attention kernel, the outer ones first: transformers' setter
    passes a kernel down to every nested config, and a nested config's own kernel then overrides it."""
    if isinstance(kernels, str):
        config._attn_implementation = kernels
        return
    for path in sorted(kernels, key=lambda p: (p.count(".") + bool(p), p)):
        target = config
        for key in path.split(".") if path else []:
            target = dict(_sub_configs(target)).get(key)
            if target is None:
                raise CheckpointError(f"{where}: attn_implementation names {path!r}, not a nested config")
        target._attn_implementation = kernels[path]


@functools.cache
def _auto_classes() -> frozenset[str]:
    """Every model class transformers' auto mappings list (``MODEL_FOR_..._MAPPING_NAMES``)."""
    from transformers.models.auto import modeling_auto

    names: set[str] = set()
    for key, mapping in vars(modeling_auto).items():
        if key.endswith("_MAPPING_NAMES") and isinstance(mapping, dict):
            for value in mapping.values():
                names.update([value] if isinstance(value, str) else value)
    return frozenset(names)


def _library_class(name: str, where: str) -> Any:
    """``transformers.<name>``, when transformers lists it as one of its model classes."""
    try:
        import transformers
    except ImportError:
        raise CheckpointError(
            f"{where} holds a Hugging Face model ({name}) and transformers is not installed: "
            "pip install transformers, or pass model=<the unpruned model> to netsculpt.load"
        ) from None
    cls = getattr(transformers, name, None) if name in _auto_classes() else None
    if not (isinstance(cls, type) and issubclass(cls, transformers.PreTrainedModel)):
        raise CheckpointError(
            f"{where}: base class {name!r} is not a model class listed in transformers' auto mappings "
            f"(transformers {transformers.__version__}); netsculpt rebuilds only those: pass "
            "model=<the unpruned model> to netsculpt.load"
        )
    return cls


def _remote_code(value: Any, path: str) -> str:
    """Where a config (or a nested one: ``text_config``) names code outside transformers: ``auto_map``
    (``trust_remote_code`` classes), or an attention / experts kernel on the Hub (``"org/repo"``)."""
    if isinstance(value, list):
        return next((r for i, v in enumerate(value) if (r := _remote_code(v, f"{path}[{i}]"))), "")
    if not isinstance(value, dict):
        return ""
    for key, item in value.items():
        where = f"{path}.{key}"
        if key == "auto_map":
            return where
        if key == "backbone" and isinstance(item, str) and not re.match(_LOCAL_NAME, item):
            return f"{where} = {item!r}"  # a Hub repo: transformers / timm download its config
        if "implementation" in key and isinstance(item, str) and not re.match(_IMPLEMENTATION, item):
            return f"{where} = {item!r}"
        if "implementation" in key and isinstance(item, dict):
            bad = [v for v in item.values() if isinstance(v, str) and not re.match(_IMPLEMENTATION, v)]
            if bad:
                return f"{where} = {bad[0]!r}"
        found = _remote_code(item, where)
        if found:
            return found
    return ""


@contextlib.contextmanager
def _module_budget(where: str) -> Iterator[None]:
    """Stop a build from numbers a file gave (``num_hidden_layers: 10**9``) before it makes more modules
    than a saved state dict could describe: the meta device bounds memory, not module objects."""
    count = [0]

    def hook(module: nn.Module, name: str, submodule: nn.Module | None) -> None:
        count[0] += 1
        if count[0] > MAX_MODULES:
            raise CheckpointError(f"{where}: the saved config builds more than {MAX_MODULES:,} modules")

    handle = nn.modules.module.register_module_module_registration_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def _build(base: dict[str, Any], where: str, device: str) -> nn.Module:
    cls = _library_class(base["class"], where)
    config_data = base["config"]
    remote = _remote_code(config_data, "config")
    if remote:
        raise CheckpointError(
            f"{where}: the saved config names remote code ({remote}), which netsculpt never runs; pass "
            "model=<the unpruned model> to netsculpt.load"
        )
    try:
        config = cls.config_class.from_dict(config_data)
        if "attn_implementation" in base:
            _set_kernels(config, base["attn_implementation"], where)
        with _module_budget(where), torch.device(device), torch.random.fork_rng(devices=[]):
            return cls(config)
    except CheckpointError:
        raise
    except Exception as exc:  # a config this transformers version cannot build
        raise CheckpointError(
            f"{where}: transformers could not build {base['class']} from the saved config "
            f"({type(exc).__name__}: {str(exc)[:200]}); pass model=<the unpruned model> to netsculpt.load"
        ) from None


def build(base: dict[str, Any], where: str) -> nn.Module:
    """The unpruned model: sized on the meta device first, then built for real (random init, which the
    saved weights replace; the global generator is left where it was)."""
    meta = _build(base, where, "meta")
    values = sum(math.prod(t.shape) for t in meta.state_dict().values())
    if values > MAX_BASE_VALUES:
        raise CheckpointError(
            f"{where}: base {base['class']} would hold {values:,} values; the limit is {MAX_BASE_VALUES:,}"
        )
    return _build(base, where, "cpu")


def identify(base: dict[str, Any]) -> dict[str, Any] | None:
    """The ``huggingface`` base of an HF model being saved, if its class rebuilt from its config is the
    same architecture (same fingerprint); None otherwise (saved as its class)."""
    from netsculpt.spec import structure_fingerprint

    hf = base.get(KIND)
    if not isinstance(hf, dict):
        return None
    candidate = {"kind": KIND, **hf}
    try:
        meta = _build(candidate, "the model to save", "meta")
    except CheckpointError:
        return None
    # hashed with tuples as lists: a config read back from JSON has lists (UperNet's pool_scales)
    return candidate if structure_fingerprint(meta, json_sequences=True) == base["hf_fingerprint"] else None
