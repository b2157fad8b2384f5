"""The ``grow_branch`` edit: conv layers given a parallel branch of another kernel size
(:mod:`netsculpt.gpp.branch`), and the inputs the model was traced at. Replay re-traces the rebuilt model
and grows the same branches; the saved weights are loaded afterwards, so the random values drawn for the
branch filters never matter.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from netsculpt.edits.base import EditKind
from netsculpt.edits.grow import MAX_GROW, check
from netsculpt.edits.grow import SCHEMA as GROW_SCHEMA
from netsculpt.edits.inputs import recorded_inputs

MAX_KERNEL = 15
MAX_BRANCHES = 8  # an Inception module has 3-4 paths

SCHEMA: dict[str, Any] = {
    "properties": {
        "branches": {
            "type": "object",
            "minProperties": 1,
            "maxProperties": 10_000,
            "additionalProperties": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_BRANCHES,
                "items": {
                    "type": "object",
                    "properties": {
                        "kernel": {
                            "type": "array",
                            "minItems": 2,
                            "maxItems": 2,
                            "items": {"type": "integer", "minimum": 1, "maximum": MAX_KERNEL},
                        },
                        "channels": {"type": "integer", "minimum": 1, "maximum": MAX_GROW},
                    },
                    "required": ["kernel", "channels"],
                    "additionalProperties": False,
                },
            },
        },
        **{k: v for k, v in GROW_SCHEMA["properties"].items() if k != "layers"},
    },
    "required": ["branches", "seed", "input_shapes"],
}


def replay(model: nn.Module, edit: dict[str, Any]) -> nn.Module:
    from netsculpt.gpp.branch import grow_branch

    return grow_branch(model, recorded_inputs(edit), edit["branches"], seed=edit["seed"], inplace=True)


GROW_BRANCH = EditKind("grow_branch", SCHEMA, replay, check)
