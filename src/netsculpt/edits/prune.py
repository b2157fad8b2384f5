"""The ``prune`` edit: a :class:`~netsculpt.surgery.PrunePlan` and the inputs it was traced at.

``input_shapes`` lists the tensor leaves' shapes (all that older files have); ``inputs`` is the full
layout (containers, dtypes, non-tensor leaves) that structured-input models such as detectors need.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from netsculpt.edits.base import EditKind
from netsculpt.edits.inputs import MAX_DIM, check_recorded_inputs, in_model_dtype, recorded_inputs
from netsculpt.errors import CheckpointError

MAX_CHANNELS = 1 << 20

_SHAPE = {
    "type": "array",
    "minItems": 1,
    "maxItems": 8,
    "items": {"type": "integer", "minimum": 1, "maximum": MAX_DIM},
}

SCHEMA: dict[str, Any] = {
    "properties": {
        "plan": {
            "type": "object",
            "properties": {
                "version": {"type": "integer", "minimum": 1, "maximum": 1},
                "keep": {
                    "type": "object",
                    "maxProperties": 100_000,
                    "additionalProperties": {
                        "type": "array",
                        "minItems": 1,
                        "items": {"type": "integer", "minimum": 0, "maximum": MAX_CHANNELS},
                    },
                },
                "sizes": {
                    "type": "object",
                    "maxProperties": 100_000,
                    "additionalProperties": {"type": "integer", "minimum": 1, "maximum": MAX_CHANNELS},
                },
                "meta": {"type": "object", "properties": {"allow_inexact": {"type": "boolean"}}},
            },
            "required": ["keep", "sizes"],
            "additionalProperties": False,
        },
        "input_shapes": {"type": "array", "maxItems": 16, "items": _SHAPE},
        "inputs": {"type": "array", "minItems": 1, "maxItems": 64},
    },
    "required": ["plan", "input_shapes"],
}


def check(edit: dict[str, Any], where: str) -> None:
    """Limits beyond the schema: bounded example inputs, kept indices inside their group's size."""
    check_recorded_inputs(
        edit,
        where,
        ", so the plan cannot be replayed (it was pruned with example inputs holding objects other than "
        "tensors, tuples, lists, string-keyed dicts, numbers, strings and None; prune with inputs made of "
        "those to save it)",
    )
    keep, sizes = edit["plan"]["keep"], edit["plan"]["sizes"]
    for group, kept in keep.items():
        field = f"{where}.plan.keep[{group!r}]"
        if group not in sizes:
            raise CheckpointError(f"{field}: the group has no entry in plan.sizes")
        if len(set(kept)) != len(kept) or max(kept) >= sizes[group]:
            raise CheckpointError(
                f"{field}: kept channels must be distinct indices below the group's size {sizes[group]}"
            )


def replay(model: nn.Module, edit: dict[str, Any]) -> nn.Module:
    from netsculpt.prune import apply_plan
    from netsculpt.surgery import PrunePlan

    inputs = in_model_dtype(recorded_inputs(edit), model)
    return apply_plan(model, PrunePlan.from_dict(edit["plan"]), inputs, inplace=True)


PRUNE = EditKind("prune", SCHEMA, replay, check)
