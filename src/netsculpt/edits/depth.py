"""The ``prune_depth``, ``fold`` and ``drop_activations`` edits: depth changes as plain data.

Replay changes module structure only (a block becomes its shortcut and activations; a folded pair
becomes one layer and an ``nn.Identity``); the saved weights are loaded afterwards, so nothing is
recomputed and nothing named in the file is run: activations come from a fixed list.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from netsculpt.edits.base import EditKind
from netsculpt.surgery.depth import POST

_NAME = {"type": "string", "minLength": 1, "maxLength": 1000}

DEPTH_SCHEMA: dict[str, Any] = {
    "properties": {
        "blocks": {
            "type": "array",
            "minItems": 1,
            "maxItems": 10_000,
            "items": {
                "type": "object",
                "properties": {
                    "name": _NAME,
                    "shortcut": {"anyOf": [_NAME, {"type": "null"}]},
                    "post": {"type": "array", "maxItems": 4, "items": {"enum": sorted(POST)}},
                },
                "required": ["name", "shortcut", "post"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["blocks"],
}

FOLD_SCHEMA: dict[str, Any] = {
    "properties": {
        "merges": {
            "type": "array",
            "minItems": 1,
            "maxItems": 10_000,
            "items": {
                "type": "object",
                "properties": {"op": {"enum": ["bn", "conv"]}, "first": _NAME, "second": _NAME},
                "required": ["op", "first", "second"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["merges"],
}


DROP_SCHEMA: dict[str, Any] = {
    "properties": {"modules": {"type": "array", "minItems": 1, "maxItems": 10_000, "items": _NAME}},
    "required": ["modules"],
}


def _replay_drop(model: nn.Module, edit: dict[str, Any]) -> nn.Module:
    from netsculpt.depth.shrink import drop_activations

    return drop_activations(model, edit["modules"], inplace=True)


def _replay_depth(model: nn.Module, edit: dict[str, Any]) -> nn.Module:
    from netsculpt.depth.api import remove_blocks

    return remove_blocks(model, edit["blocks"], inplace=True)


def _replay_fold(model: nn.Module, edit: dict[str, Any]) -> nn.Module:
    from netsculpt.spec import append_step
    from netsculpt.surgery.fold import fold_structure_

    fold_structure_(model, edit["merges"])
    append_step(model, {"kind": "fold", "merges": edit["merges"]})
    return model


PRUNE_DEPTH = EditKind("prune_depth", DEPTH_SCHEMA, _replay_depth)
FOLD = EditKind("fold", FOLD_SCHEMA, _replay_fold)
DROP_ACTIVATIONS = EditKind("drop_activations", DROP_SCHEMA, _replay_drop)
