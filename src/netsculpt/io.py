"""Save and load models without pickle: safetensors weights + a JSON spec.

The spec says how to rebuild the architecture: the zoo / torchvision / timm name and options that built
it, followed by every prune plan applied to it, replayed in order on the freshly built base model. For a
model netsculpt did not build, pass ``builder="package.module:function"`` (your own code, imported by
name) so it can be rebuilt the same way.
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from netsculpt.errors import CheckpointError
from netsculpt.fileio import atomic_write, load_state_dict_file, write_json
from netsculpt.spec import model_spec, tag_model

FORMAT = "netsculpt-model"
VERSION = 2  # 2: weights may be packed (palettized layers, see netsculpt.weights.storage)
WEIGHTS_FILE = "model.safetensors"
SPEC_FILE = "netsculpt.json"


def save(
    model: nn.Module,
    directory: str | os.PathLike[str],
    *,
    builder: str | None = None,
    builder_kwargs: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` to ``directory`` (weights and spec, each written atomically)."""
    directory = Path(directory)
    spec = model_spec(model)
    if builder is not None:
        spec = {
            "builder": builder,
            "kwargs": dict(builder_kwargs or {}),
            "plans": (spec or {}).get("plans", []),
        }
    if spec is None:
        raise CheckpointError(
            "netsculpt.save needs to know how to rebuild this model: build it with "
            "netsculpt.models.create_model (or ns.load), or pass builder='package.module:function' (and "
            "builder_kwargs) naming code that builds "
            "the unpruned architecture"
        )
    from netsculpt.weights.storage import pack_state

    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    tensors, metadata = pack_state(model, state)  # palettized layers as packed indices + fp16 tables
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write(directory / WEIGHTS_FILE, lambda p: save_file(tensors, str(p), metadata=metadata))
    version = VERSION if metadata else 1  # plain files stay readable by netsculpt versions before packing
    write_json(
        directory / SPEC_FILE, {"format": FORMAT, "version": version, "spec": spec, "extra": extra or {}}
    )
    return directory


def read_spec(directory: str | os.PathLike[str]) -> dict[str, Any]:
    path = Path(directory) / SPEC_FILE
    if not path.is_file():
        raise CheckpointError(f"{str(directory)!r} is not a saved netsculpt model: {SPEC_FILE} is missing")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{str(path)!r} is not valid JSON: {exc}") from None
    if data.get("format") != FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a netsculpt model spec (format {data.get('format')!r})")
    if data.get("version", 0) > VERSION:
        raise CheckpointError(f"{str(path)!r} was written by a newer netsculpt (version {data['version']})")
    return data


def build_base(spec: dict[str, Any]) -> nn.Module:
    """Build the unpruned architecture a spec describes."""
    if "builder" in spec:
        module_name, _, fn_name = spec["builder"].partition(":")
        try:
            fn = getattr(importlib.import_module(module_name), fn_name)
        except (ImportError, AttributeError) as exc:
            raise CheckpointError(f"cannot import builder {spec['builder']!r}: {exc}") from None
        model = fn(**spec.get("kwargs", {}))
        tag_model(model, {"builder": spec["builder"], "kwargs": spec.get("kwargs", {})})
        return model
    from netsculpt.models import create_model

    return create_model(
        spec["name"],
        num_classes=spec.get("num_classes"),
        in_channels=spec.get("in_channels"),
        **spec.get("kwargs", {}),
    )


def load(directory: str | os.PathLike[str]) -> nn.Module:
    """Rebuild a saved model: base architecture, replayed plans, then the saved weights (strict)."""
    from netsculpt.prune import apply_plan
    from netsculpt.surgery import PrunePlan

    data = read_spec(directory)
    spec = data["spec"]
    model = build_base(spec)
    for step in spec.get("plans", []):
        if "factorise" in step:  # a low-rank step: rebuild its layer chains, weights come below
            from netsculpt.weights.lowrank import refactorise_

            refactorise_(model, step["factorise"])
            continue
        inputs = tuple(torch.zeros(s) for s in step["input_shapes"])
        model = apply_plan(model, PrunePlan.from_dict(step["plan"]), inputs, inplace=True)
    from netsculpt.weights.storage import unpack_state

    state = unpack_state(model, Path(directory) / WEIGHTS_FILE)  # None: a plain state dict
    if state is None:
        state = load_state_dict_file(Path(directory) / WEIGHTS_FILE)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        raise CheckpointError(
            f"saved weights in {str(directory)!r} do not fit the rebuilt model: {exc}"
        ) from None
    if missing or unexpected:
        raise CheckpointError(
            f"saved weights in {str(directory)!r} do not fit the rebuilt model: missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}"
        )
    model.eval()
    return model


def is_saved_model(path: str | os.PathLike[str]) -> bool:
    return (Path(path) / SPEC_FILE).is_file()
