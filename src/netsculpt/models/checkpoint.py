"""Load a local state dict into a freshly built model, explaining any mismatch.

``torch.nn.Module.load_state_dict`` reports mismatches as a wall of key names; a user who picked the
wrong model name or class count needs the first few differences and the model that was expected.
Files are read with :func:`netsculpt.fileio.load_state_dict_file` (safetensors, or torch with
``weights_only=True``), so nothing in them is ever unpickled.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from netsculpt.errors import CheckpointError
from netsculpt.fileio import load_state_dict_file

_SHOW = 5  # keys listed per kind of mismatch


def _optional(key: str) -> bool:
    """BN's batch counter is bookkeeping, not a weight; exporters often drop it."""
    return key.endswith("num_batches_tracked")


def _listing(keys: list[str]) -> str:
    more = f", ... ({len(keys) - _SHOW} more)" if len(keys) > _SHOW else ""
    return ", ".join(keys[:_SHOW]) + more


def _prefix_hint(missing: list[str], unexpected: list[str]) -> str:
    """Spot the common case of every file key carrying an extra prefix such as ``model.``."""
    if not missing or not unexpected:
        return ""
    first = unexpected[0]
    for key in missing:
        if first.endswith("." + key):
            prefix = first[: -len(key)]
            if all(k.startswith(prefix) for k in unexpected):
                return f" Every key in the file starts with {prefix!r}: strip it before saving."
            break
    return ""


def describe_mismatch(
    expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor], model_desc: str, path: str
) -> str | None:
    """A readable account of how ``found`` differs from ``expected``, or ``None`` when they match."""
    missing = [k for k in expected if k not in found and not _optional(k)]
    unexpected = [k for k in found if k not in expected]
    shapes = [k for k in expected if k in found and found[k].shape != expected[k].shape]
    if not (missing or unexpected or shapes):
        return None
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing key(s): {_listing(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected key(s): {_listing(unexpected)}")
    if shapes:
        key = shapes[0]
        parts.append(
            f"{len(shapes)} shape mismatch(es), first {key}: {tuple(found[key].shape)} in the file, "
            f"{tuple(expected[key].shape)} in the model"
        )
    hint = _prefix_hint(missing, unexpected)
    return (
        f"checkpoint {path!r} does not fit {model_desc}: {'; '.join(parts)}.{hint} "
        "Check that the model name, num_classes, in_channels and model options match the ones the checkpoint "
        "was trained with."
    )


def load_checkpoint(model: nn.Module, path: str | os.PathLike[str], model_desc: str) -> nn.Module:
    """Copy the tensors in ``path`` into ``model`` (in place) after checking every key and shape."""
    from netsculpt.saved.bases import shaped_

    state = load_state_dict_file(path)
    # a builder's lazy layers (nn.LazyLinear) take the file's shapes, as torch's own loading does
    fix = "save the checkpoint from the model after it has run once"
    shaped_(model, {k: list(v.shape) for k, v in state.items()}, f"checkpoint {os.fspath(path)!r}", fix)
    problem = describe_mismatch(model.state_dict(), state, model_desc, os.fspath(path))
    if problem:
        raise CheckpointError(problem)
    model.load_state_dict(state, strict=False)  # strict checks done above; only optional keys may be absent
    return model
