"""``netsculpt.json``: read it strictly, migrate old versions, validate everything before any build.

Version 3 (this one)::

    {"format": "netsculpt-model", "version": 3,
     "base": {"kind": "netsculpt", "name": "torchvision:resnet18", "num_classes": 10, "in_channels": 3,
              "kwargs": {}}                                   # or kind "builder" / "user", see bases.py
     "base_shapes": {"conv1.weight": [64, 3, 7, 7], ...},   # the unpruned state dict's shapes
     "edits": [{"kind": "prune", ...}, {"kind": "factorise", ...}],   # netsculpt.edits
     "dtypes": {"fc.weight": "float64", ...},   # optional: saved floats that are not float32
     "memory_format": "channels_last",            # optional: netsculpt.saved.layout
     "rates": {"classifier.0": {"class": "torch.nn.modules.dropout.Dropout", "attrs": {"p": 0.5, ...}},
               "": {"attrs": {"drop_rate": 0.2}}, ...},   # optional: netsculpt.saved.rates
     "extra": {"input_shape": [1, 3, 224, 224], ...}}

Versions 1 and 2 kept ``{"spec": {<base fields>, "plans": [...]}}``; they are migrated on read.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch

from netsculpt.edits import validate_edits
from netsculpt.edits.inputs import MAX_INPUT_ELEMENTS
from netsculpt.errors import CheckpointError, a_type
from netsculpt.jsoncheck import check_schema, read_json_file
from netsculpt.saved.bases import validate_base
from netsculpt.saved.layout import MEMORY_FORMATS
from netsculpt.saved.rates import SCHEMA as RATES_SCHEMA

FORMAT = "netsculpt-model"
VERSION = 3
SPEC_FILE = "netsculpt.json"
MAX_STATE_ENTRIES = 200_000

#: float dtypes a saved state-dict entry may have besides float32 (``dtypes`` lists only those entries;
#: a document without it is all float32, as every file before dtypes were recorded)
FLOAT_DTYPES = {"float64": torch.float64, "float16": torch.float16, "bfloat16": torch.bfloat16}

_SHAPE = {"type": "array", "maxItems": 8, "items": {"type": "integer", "minimum": 0, "maximum": 1 << 31}}

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "format": {"const": FORMAT},
        "version": {"const": VERSION},
        "base": {"type": "object"},
        "base_shapes": {
            "anyOf": [
                {"type": "null"},
                {"type": "object", "maxProperties": MAX_STATE_ENTRIES, "additionalProperties": _SHAPE},
            ]
        },
        "edits": {"type": "array"},
        "dtypes": {
            "type": "object",
            "maxProperties": MAX_STATE_ENTRIES,
            "additionalProperties": {"enum": list(FLOAT_DTYPES)},
        },
        "memory_format": {"enum": list(MEMORY_FORMATS)},  # absent: contiguous (NCHW), as builders make
        "rates": RATES_SCHEMA,  # absent in files written before rates were recorded: builder defaults
        "extra": {
            "type": "object",
            "properties": {
                "input_shape": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 8,
                    "items": {"type": "integer", "minimum": 1, "maximum": 1 << 20},
                },
                "stage": {"type": "string", "maxLength": 100},
            },
        },
    },
    "required": ["format", "version", "base", "edits"],
    "additionalProperties": False,
}


def migrate(data: dict[str, Any], where: str) -> dict[str, Any]:
    """Turn a version 1 / 2 document (``spec`` with ``plans``) into version 3."""
    spec = data.get("spec")
    if not isinstance(spec, dict):
        raise CheckpointError(f"{where}: a version {data.get('version')} document needs a 'spec' object")
    plans = spec.get("plans", [])
    if not isinstance(plans, list):
        raise CheckpointError(f"{where}: spec.plans must be a list")
    if "builder" in spec:
        base = {"kind": "builder", "builder": spec["builder"], "kwargs": spec.get("kwargs", {})}
    else:
        base = {
            "kind": "netsculpt",
            **{k: spec[k] for k in ("name", "num_classes", "in_channels") if k in spec},
        }
        base["kwargs"] = spec.get("kwargs", {})
    edits = []
    for step in plans:
        if isinstance(step, dict) and "factorise" in step:
            edits.append({"kind": "factorise", "layers": step["factorise"]})
        elif isinstance(step, dict):
            edits.append({"kind": "prune", **step})
        else:
            raise CheckpointError(f"{where}: spec.plans holds {a_type(step)}, not an object")
    return {
        "format": FORMAT,
        "version": VERSION,
        "base": base,
        "base_shapes": None,
        "edits": edits,
        "extra": data.get("extra", {}),
    }


def validate_document(data: Any, where: str) -> dict[str, Any]:
    """Every check a document must pass before netsculpt builds or allocates anything for it."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise CheckpointError(f"{where} is not a netsculpt model spec (format {found!r})")
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CheckpointError(f"{where}: version must be a positive integer, got {version!r}")
    if version > VERSION:
        raise CheckpointError(
            f"{where} was written by a newer netsculpt (format version {version}; this one reads up to "
            f"{VERSION}): upgrade netsculpt"
        )
    if version < VERSION:
        data = migrate(data, where)
    check_schema(data, SCHEMA, where)
    validate_base(data["base"], where)
    validate_edits(data["edits"], where)
    shape = data.get("extra", {}).get("input_shape")
    if shape is not None and math.prod(shape) > MAX_INPUT_ELEMENTS:
        raise CheckpointError(
            f"{where}: extra.input_shape {shape} is larger than {MAX_INPUT_ELEMENTS:,} values"
        )
    return data


def read_document(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The validated (and migrated) document of a saved model folder."""
    path = Path(directory) / SPEC_FILE
    if not path.is_file():
        raise CheckpointError(f"{str(directory)!r} is not a saved netsculpt model: {SPEC_FILE} is missing")
    return validate_document(read_json_file(path), repr(str(path)))
