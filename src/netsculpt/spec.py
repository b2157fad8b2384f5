"""Model provenance: how to rebuild a model without pickling it.

``create_model`` tags every model with the name and options that built it; pruning appends the plans it
applied. ``netsculpt.io`` stores this spec as JSON beside the weights, so loading replays it on the base
architecture instead of unpickling Python objects.
"""

from __future__ import annotations

import copy
from typing import Any

from torch import nn

SPEC_ATTR = "netsculpt_spec"


def tag_model(model: nn.Module, spec: dict[str, Any]) -> nn.Module:
    """Attach a JSON-serialisable build description to ``model``."""
    object.__setattr__(model, SPEC_ATTR, copy.deepcopy(spec))
    return model


def model_spec(model: nn.Module) -> dict[str, Any] | None:
    """The build description of ``model``, or None for a model netsculpt did not build."""
    spec = getattr(model, SPEC_ATTR, None)
    return copy.deepcopy(spec) if isinstance(spec, dict) else None


def append_plan(model: nn.Module, plan: dict[str, Any], input_shapes: list[tuple[int, ...]]) -> None:
    """Record a plan applied to ``model`` (replayed in order when the model is loaded)."""
    append_step(model, {"plan": plan, "input_shapes": [list(s) for s in input_shapes]})


def append_step(model: nn.Module, step: dict[str, Any]) -> None:
    """Record one architecture change (a prune plan, a low-rank factorisation); ``netsculpt.io.load``
    replays the steps in order. Kept under the historical key ``plans`` so older files still load."""
    spec = model_spec(model)
    if spec is None:
        return
    spec.setdefault("plans", []).append(copy.deepcopy(step))
    tag_model(model, spec)
