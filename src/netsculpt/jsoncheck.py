"""Reading JSON that came from a file someone may have edited: strict parsing and schema checks.

Python's ``json`` accepts ``NaN``/``Infinity``, silently keeps the last of duplicate keys and reads a file
of any size; a saved model or run folder must not. Schemas are checked with ``jsonschema`` (the
reference implementation), and every failure becomes a ``CheckpointError`` naming the file and field.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

from netsculpt.errors import CheckpointError, NetsculptError

MAX_JSON_BYTES = 16 * 1024 * 1024


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def parse_json(text: str | bytes, where: str, error: type[NetsculptError] = CheckpointError) -> Any:
    """``json.loads`` without NaN / Infinity, duplicate keys or unbounded nesting."""
    try:
        return json.loads(text, parse_constant=_no_constants, object_pairs_hook=_no_duplicates)
    except RecursionError:
        raise error(f"{where} is nested too deeply to be a netsculpt file") from None
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError; so are huge ints
        raise error(f"{where} is not valid JSON: {exc}") from None


def read_json_file(
    path: str | os.PathLike[str],
    *,
    max_bytes: int = MAX_JSON_BYTES,
    error: type[NetsculptError] = CheckpointError,
) -> Any:
    """Read and parse ``path`` strictly, refusing files larger than ``max_bytes`` before reading them."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise error(f"{str(path)!r} is not a regular file")
        if size > max_bytes:
            raise error(f"{str(path)!r} is {size:,} bytes; netsculpt reads at most {max_bytes:,}")
        with open(path, "rb") as f:
            text = f.read(max_bytes + 1)
    except OSError as exc:
        raise error(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    return parse_json(text, repr(str(path)), error)


@functools.cache
def _validator(schema_text: str) -> Any:
    import jsonschema

    schema = json.loads(schema_text)
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    cls.check_schema(schema)
    # JSON Schema counts 2132.0 as an integer; the readers index, slice and allocate with these values
    # (a float there was a raw TypeError), and netsculpt never writes a whole number as a float
    strict = cls.TYPE_CHECKER.redefine("integer", _whole)
    return jsonschema.validators.extend(cls, type_checker=strict)(schema)


def _whole(_checker: Any, value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_schema(data: Any, schema: dict[str, Any], where: str, field: str = "") -> None:
    """Raise a ``CheckpointError`` naming the first field of ``data`` that ``schema`` rejects."""
    validator = _validator(json.dumps(schema, sort_keys=True))
    error = next(iter(sorted(validator.iter_errors(data), key=lambda e: list(e.path))), None)
    if error is None:
        return
    inner = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    name = (field + inner).lstrip(".") or "the document"
    message = error.message if len(error.message) <= 200 else error.message[:200] + "..."
    raise CheckpointError(f"{where}: {name}: {message}")
