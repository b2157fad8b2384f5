"""The ``grow`` edit: layers given more output channels (:mod:`netsculpt.gpp.grow`), and the inputs the
model was traced at. Replay re-traces the rebuilt model and appends the same channels; the saved weights
are loaded afterwards, so the random values drawn for the new channels never matter.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from netsculpt.edits.base import EditKind
from netsculpt.edits.inputs import build_inputs, check_layout
from netsculpt.edits.prune import _SHAPE, MAX_DIM, MAX_INPUT_ELEMENTS
from netsculpt.errors import CheckpointError

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
    for i, shape in enumerate(edit["input_shapes"]):
        if math.prod(shape) > MAX_INPUT_ELEMENTS:
            raise CheckpointError(
                f"{where}.input_shapes[{i}]: {shape} holds {math.prod(shape):,} values; the limit is "
                f"{MAX_INPUT_ELEMENTS:,}"
            )
    if "inputs" in edit:
        check_layout(edit["inputs"], f"{where}.inputs", MAX_INPUT_ELEMENTS, MAX_DIM)
    elif not edit["input_shapes"]:
        raise CheckpointError(
            f"{where}: records neither input_shapes nor an inputs layout to trace the model at"
        )


def traced_inputs(edit: dict[str, Any]) -> tuple[Any, ...]:
    """The inputs a grow edit was traced at: its recorded layout, else zeros of its input shapes."""
    if "inputs" in edit:
        return build_inputs(edit["inputs"])
    return tuple(torch.zeros(shape) for shape in edit["input_shapes"])


def replay(model: nn.Module, edit: dict[str, Any]) -> nn.Module:
    from netsculpt.gpp.grow import grow

    return grow(model, traced_inputs(edit), edit["layers"], seed=edit["seed"], inplace=True)


GROW = EditKind("grow", SCHEMA, replay, check)
