"""The ``adder`` edit: convolutions replaced by adder layers (:mod:`netsculpt.adder`)."""

from __future__ import annotations

from typing import Any

from torch import nn

from netsculpt.edits.base import EditKind

SCHEMA: dict[str, Any] = {
    "properties": {
        "eta": {"type": "number", "minimum": 0, "maximum": 1e6},
        "layers": {
            "type": "array",
            "minItems": 1,
            "maxItems": 10_000,
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "minLength": 1, "maxLength": 1000},
                    "bn": {"type": "boolean"},
                },
                "required": ["name", "bn"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["eta", "layers"],
}


def replay(model: nn.Module, edit: dict[str, Any]) -> nn.Module:
    from netsculpt.adder.convert import replay_adder_

    return replay_adder_(model, edit)


ADDER = EditKind("adder", SCHEMA, replay)
