"""The edit registry and the two things done with a list of edits: validate it, replay it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from netsculpt.errors import CheckpointError
from netsculpt.jsoncheck import check_schema
from netsculpt.registry import Registry

MAX_EDITS = 256  # far above any real chain (prune, distil, prune again, factorise, ...)


@dataclass(frozen=True)
class EditKind:
    """How one kind of architecture change is checked and replayed.

    ``schema`` is a JSON schema for the edit's fields (``kind`` excluded); ``check(edit, where)`` raises a
    ``CheckpointError`` for what a schema cannot express (cross-field limits); ``replay(model, edit)``
    applies the edit to the rebuilt model and returns it, leaving the edit recorded on the model (the
    public verbs record what they do, so replay goes through them).
    """

    name: str
    schema: dict[str, Any]
    replay: Callable[[nn.Module, dict[str, Any]], nn.Module]
    check: Callable[[dict[str, Any], str], None] | None = None


EDITS: Registry[EditKind] = Registry("edit kind")


def register_edit(kind: EditKind, *, overwrite: bool = False) -> EditKind:
    EDITS.register(kind.name, kind, overwrite=overwrite)
    return kind


def _full_schema(kind: EditKind) -> dict[str, Any]:
    schema = dict(kind.schema)
    schema["properties"] = {"kind": {"const": kind.name}, **schema.get("properties", {})}
    schema["required"] = ["kind", *schema.get("required", [])]
    schema.setdefault("additionalProperties", False)
    return {"type": "object", **schema}


def validate_edits(edits: Any, where: str) -> list[dict[str, Any]]:
    """Check every edit's kind, fields and limits before anything is built; returns the edits."""
    if not isinstance(edits, list):
        raise CheckpointError(f"{where}: 'edits' must be a list, got {type(edits).__name__}")
    if len(edits) > MAX_EDITS:
        raise CheckpointError(f"{where}: {len(edits)} edits is more than the limit of {MAX_EDITS}")
    for i, edit in enumerate(edits):
        field = f"edits[{i}]"
        if not isinstance(edit, dict) or not isinstance(edit.get("kind"), str):
            raise CheckpointError(f"{where}: {field} must be an object with a string 'kind'")
        if edit["kind"] not in EDITS:
            raise CheckpointError(f"{where}: {field}: {EDITS.unknown_message(edit['kind'])}")
        kind = EDITS.get(edit["kind"])
        check_schema(edit, _full_schema(kind), where, field)
        if kind.check is not None:
            kind.check(edit, f"{where}: {field}")
    return edits


def replay_edits(model: nn.Module, edits: list[dict[str, Any]], where: str) -> nn.Module:
    """Apply validated ``edits`` in order; a failure names the edit instead of a line inside torch."""
    for i, edit in enumerate(edits):
        try:
            model = EDITS.get(edit["kind"]).replay(model, edit)
        except CheckpointError:
            raise
        except Exception as exc:  # model code runs here: whatever a valid but wrong edit makes it raise
            raise CheckpointError(
                f"{where}: edits[{i}] ({edit['kind']}) does not fit the rebuilt model: "
                f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            ) from None
    return model
