"""The ``grow`` edit: layers given more output channels (:mod:`netsculpt.gpp.grow`), and the inputs the
model was traced at. Replay re-traces the rebuilt model and appends the same channels; the saved weights
are loaded afterwards, so the random values drawn for the new channels never matter.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from netsculpt.edits.base import EditKind
from netsculpt.edits.inputs import check_recorded_inputs, recorded_inputs
from netsculpt.edits.prune import _SHAPE

MAX_GROW = 1 << 16

SCHEMA: dict[str, Any] = {
    "properties": {
        "layers": {
            "type": "object",
            "minProperties": 1,
            "maxProperties": 10_000,
            "additionalProperties": {"type": "integer", "minimum": 1, "maximum": MAX_GROW},
        },
        "seed": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
        "input_shapes": {"type": "array", "maxItems": 16, "items": _SHAPE},
        "inputs": {"type": "array", "minItems": 1, "maxItems": 64},
    },
    "required": ["layers", "seed", "input_shapes"],
}


def check(edit: dict[str, Any], where: str) -> None:
    check_recorded_inputs(edit, where, " to trace the model at")


def replay(model: nn.Module, edit: dict[str, Any]) -> nn.Module:
    from netsculpt.gpp.grow import grow

    return grow(model, recorded_inputs(edit), edit["layers"], seed=edit["seed"], inplace=True)


GROW = EditKind("grow", SCHEMA, replay, check)
