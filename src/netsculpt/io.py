"""Save and load models without pickle and without running code a file names.

A saved model is a folder: ``model.safetensors`` (the weights) and ``netsculpt.json`` (how to rebuild the
architecture: its unpruned **base** and the ordered **edits** applied since; see
:mod:`netsculpt.saved.document`). Loading validates the whole document first, builds the base from
netsculpt's registries only, replays registered edits (:mod:`netsculpt.edits`) and then loads the
weights strictly. A base netsculpt cannot rebuild is supplied by the caller: ``model=`` (replay onto your
own unpruned model) or ``trust_builder="pkg.mod:function"`` (run exactly that builder). See
docs/security.md.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from safetensors.torch import save_file
from torch import nn

from netsculpt import checks
from netsculpt.edits import replay_edits
from netsculpt.errors import CheckpointError, ConfigError
from netsculpt.fileio import atomic_write, write_json
from netsculpt.parallel import unwrap_parallel
from netsculpt.saved import huggingface
from netsculpt.saved.bases import build_base
from netsculpt.saved.document import FORMAT, SPEC_FILE, VERSION, read_document, validate_document
from netsculpt.saved.dtypes import cast_floats_, float_dtypes
from netsculpt.saved.hf_pretrained import edited_note
from netsculpt.saved.layout import memory_format, restore_memory_format_
from netsculpt.saved.rates import apply_rates, differing_rates
from netsculpt.saved.weights import read_weights
from netsculpt.spec import describe_unbuilt, model_spec, state_shapes

WEIGHTS_FILE = "model.safetensors"

__all__ = ["FORMAT", "SPEC_FILE", "VERSION", "WEIGHTS_FILE", "is_saved_model", "load", "read_spec", "save"]


def _resolve_base(spec: dict[str, Any]) -> dict[str, Any]:
    """Name the base of a model netsculpt did not build: a Hugging Face class and config, a torchvision /
    timm builder, else its class."""
    base = spec["base"]
    if base["kind"] != "unidentified":
        return base
    from netsculpt.models.identify import identify_base

    found = huggingface.identify(base) or identify_base(base, spec["base_shapes"] or {})
    return found or {"kind": "user", "class": base["class"]}


def _non_finite(value: Any, path: str) -> tuple[str, float] | None:
    """Where the first NaN / infinite float in ``value`` sits (``extra['loss'][0]``) and that float."""
    if isinstance(value, float) and not math.isfinite(value):
        return path, value
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list | tuple):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _non_finite(item, f"{path}[{key!r}]")
        if found is not None:
            return found
    return None


def _document(
    model: nn.Module, builder: str | None, builder_kwargs: dict[str, Any] | None, extra: Any
) -> dict:
    spec = model_spec(model) or describe_unbuilt(model)
    base = (
        {"kind": "builder", "builder": builder, "kwargs": dict(builder_kwargs or {})}
        if builder is not None
        else _resolve_base(spec)
    )
    document = {
        "format": FORMAT,
        "version": VERSION,
        "base": base,
        # built with lazy layers and since run once, unedited: the shapes it has now are the base's
        "base_shapes": spec["base_shapes"] if spec["base_shapes"] or spec["edits"] else state_shapes(model),
        "edits": spec["edits"],
        "extra": dict(extra or {}),
    }
    if base["kind"] == huggingface.KIND and spec["edits"]:  # its config no longer says what it is
        document["extra"].setdefault(huggingface.KIND, edited_note(model))
    rates = differing_rates(model, base)
    if rates:  # dropout / drop-path rates the rebuilt base would not have (the fingerprint ignores them)
        document["rates"] = rates
    dtypes = float_dtypes(model)
    if dtypes:  # only when some float is not float32: such files are what older netsculpt refuses
        document["dtypes"] = dtypes
    layout = memory_format(model)
    if layout:  # only for channels_last models, for the same reason
        document["memory_format"] = layout
    for key in ("extra", "base", "edits"):
        found = _non_finite(document[key], key)
        if found is not None:  # netsculpt.json is strict JSON: load would refuse NaN / Infinity
            raise CheckpointError(
                f"cannot save this model: {found[0]} is {found[1]!r}, which netsculpt.json cannot hold; "
                "store it as a string or None, or leave it out"
            )
    try:  # exactly what load will see: options that are not JSON fail here, not when loading
        document = json.loads(json.dumps(document, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(
            f"cannot save this model: its build options are not plain data ({exc}); build it with options "
            "netsculpt can record (numbers, strings, booleans, lists) or pass "
            "builder='package.module:function'"
        ) from None
    return validate_document(document, "the model to save")


def save(
    model: nn.Module,
    directory: str | os.PathLike[str],
    *,
    builder: str | None = None,
    builder_kwargs: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    coding: str = "plain",
) -> Path:
    """Write ``model`` to ``directory`` (weights and spec, each written atomically).

    Works for any model: netsculpt's own, torchvision / timm models however they were built, and any
    other class (its loading then needs ``model=`` or ``trust_builder=``). ``builder=`` names code that
    rebuilds the unpruned architecture (run on load only when the loader trusts it). ``coding="context"``
    range-codes palette indices and sparsity masks with a context model (smaller; slower to load).
    A ``DataParallel`` / ``DistributedDataParallel`` is saved as the network inside it (with a warning).
    """
    from netsculpt.weights.storage import pack_state

    if not isinstance(model, nn.Module):
        raise ConfigError(f"ns.save(model, directory) takes a torch.nn.Module, got {type(model).__name__}")
    from netsculpt.runtimes.artefacts import refuse_artefact

    refuse_artefact(model, "ns.save")  # it wrote a 112-byte file that ns.load refused
    model = unwrap_parallel(model, "ns.save")  # a DataParallel's folder would load as a DataParallel
    checks.materialised(model, "save")  # lazy layers have no shapes to write
    directory = checks.path(directory, "directory", "ns.save")
    for arg, value in (("builder_kwargs", builder_kwargs), ("extra", extra)):
        checks.instance(value, dict, arg, "a dict of plain data (JSON), or None", "ns.save", optional=True)
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"{str(directory)!r} is a file; ns.save writes a folder: choose another path")
    document = _document(model, builder, builder_kwargs, extra)
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    tensors, metadata = pack_state(model, state, coding)  # palettized layers as packed indices + fp16 tables
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError, PermissionError) as exc:  # a file on the way, no rights
        raise ConfigError(f"ns.save cannot create the folder {str(directory)!r}: {exc.strerror}") from None
    atomic_write(directory / WEIGHTS_FILE, lambda p: save_file(tensors, str(p), metadata=metadata))
    write_json(directory / SPEC_FILE, document)
    return directory


def read_spec(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The validated ``netsculpt.json`` of a saved model (older versions migrated to the current one)."""
    return read_document(directory)


def load(
    directory: str | os.PathLike[str],
    *,
    model: nn.Module | None = None,
    trust_builder: str | None = None,
) -> nn.Module:
    """Rebuild a saved model: base architecture, replayed edits, then the saved weights (strict).

    ``model``: your unpruned model to replay the saved edits onto (it is copied, not changed); needed
    when the base is a class netsculpt cannot rebuild. ``trust_builder``: the exact
    ``"package.module:function"`` you allow to build the base, when the file names one.
    """
    directory = checks.path(directory, "directory", "ns.load")
    checks.instance(
        trust_builder, str, "trust_builder", "'package.module:function', or None", "ns.load", optional=True
    )
    where = repr(str(Path(directory) / SPEC_FILE))
    document = read_document(directory)
    if isinstance(model, nn.Module):
        model = unwrap_parallel(model, "ns.load(model=...)")  # the saved base is the network inside
        if document["base_shapes"] is None:  # an old file: no saved shapes for its lazy layers to take
            checks.materialised(model, "load a saved model onto", then="pass it to ns.load again")
    base = build_base(
        document["base"], document["base_shapes"], where, model=model, trust_builder=trust_builder
    )
    dtypes = document.get("dtypes", {})
    cast_floats_(base, dtypes, where, partial=True)  # replay traces the base in the saved dtypes
    rebuilt = cast_floats_(replay_edits(base, document["edits"], where), dtypes, where)
    apply_rates(rebuilt, document.get("rates"), where)
    state = read_weights(rebuilt, Path(directory) / WEIGHTS_FILE)
    # the rebuilt model's own per-module versions: some modules (MNASNet) refuse a state dict without them
    state = _with_metadata(state, rebuilt)
    missing, unexpected = rebuilt.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"saved weights in {str(directory)!r} do not fit the rebuilt model: missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}"
        )
    restore_memory_format_(rebuilt, document.get("memory_format"))  # builders and safetensors are NCHW
    rebuilt.eval()
    return rebuilt


def _with_metadata(state: dict[str, Any], model: nn.Module) -> dict[str, Any]:
    from collections import OrderedDict

    out = OrderedDict(state)
    out._metadata = getattr(model.state_dict(), "_metadata", OrderedDict())  # type: ignore[attr-defined]
    return out


def is_saved_model(path: str | os.PathLike[str]) -> bool:
    return (Path(path) / SPEC_FILE).is_file()
