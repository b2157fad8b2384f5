"""The ``factorise`` edit: layers replaced by low-rank chains (:mod:`netsculpt.weights.lowrank`)."""

from __future__ import annotations

from typing import Any

from torch import nn

from netsculpt.edits.base import EditKind

SCHEMA: dict[str, Any] = {
    "properties": {
        "layers": {
            "type": "array",
            "minItems": 1,
            "maxItems": 10_000,
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "minLength": 1, "maxLength": 1000},
                    "kind": {"enum": ["svd", "spatial", "tucker2"]},
                    "ranks": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": 2,
                        "items": {"type": "integer", "minimum": 1, "maximum": 1 << 20},
                    },
                },
                "required": ["name", "kind", "ranks"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["layers"],
}


def replay(model: nn.Module, edit: dict[str, Any]) -> nn.Module:
    from netsculpt.weights.lowrank import refactorise_

    refactorise_(model, edit["layers"])
    return model


FACTORISE = EditKind("factorise", SCHEMA, replay)
