"""The schema of ``RUN_DIR/results.json``: what a run records, validated with errors that name the field.

Version 1 covers both shapes netsculpt writes: the ``compress`` job (``stages`` keyed by stage name,
``before``/``after`` metrics) and recipe runs (``stages`` as a list of records with ``settings`` and
``metrics``, plus ``recipe``, ``points`` and ``pareto``). Everything but ``version`` is optional, so a
report can be made from whatever a run managed to record; unknown keys are kept, so a newer writer
that adds fields does not break an older reader. A file whose ``version`` is newer than
:data:`SCHEMA_VERSION` is refused with advice instead of being half-understood.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError

from netsculpt.errors import ConfigError

SCHEMA_VERSION = 1

Count = Annotated[int, Field(ge=0, le=2**62)]  # bounded: counts beyond int64 only break plots
Dim = Annotated[int, Field(ge=0, le=2**31)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0, description="a fraction in [0, 1], e.g. 0.985")]
NonNegative = Annotated[float, Field(ge=0.0)]


def _shape(value: Any) -> str:
    """Pick a union branch by JSON type, so errors come from the branch the file meant (no noise)."""
    return "list" if isinstance(value, list) else "str" if isinstance(value, str) else "dict"


class Record(BaseModel):
    """Base: unknown keys are kept (forward compatible), known keys are type-checked."""

    model_config = ConfigDict(extra="allow")


class LayerRecord(Record):
    """One module as ``LayerMetrics.to_dict`` writes it; ``output_shape`` gives its width."""

    name: str
    type: str
    params: Count | None = None
    macs: Count | None = None
    output_shape: list[Dim] | None = None  # bounded: a width beyond int64 is no width (found by fuzzing)


class CalibrationRecord(Record):
    """The machine-speed figures timings were taken beside (``measure.cpu_calibration``)."""

    matmul_gflops: NonNegative | None = None
    python_loop_ms: NonNegative | None = None


class ModelRecord(Record):
    """One measured model: ``Metrics.to_dict()`` plus the accuracy it reached."""

    accuracy: Fraction | None = None
    loss: float | None = None
    params: Count
    macs: Count
    peak_activation_bytes: Count | None = None
    batch_size: Annotated[int, Field(ge=1)] | None = Field(
        default=None, description="batch size of the example macs and peak_activation_bytes are for"
    )
    size_bytes: Count | None = None
    latency_ms: NonNegative | None = None
    latency: dict[str, dict[str, NonNegative]] = Field(
        default_factory=dict, description="runtime -> batch size (as a string) -> median milliseconds"
    )
    layers: list[LayerRecord] = Field(default_factory=list)
    calibration: CalibrationRecord | None = None
    threads: int | None = None


class PlanRecord(Record):
    """A ``PrunePlan.to_dict()``: group id -> kept channel indices, and each group's original size."""

    version: int = 1
    keep: dict[str, list[int]]
    sizes: dict[str, Count]
    meta: dict[str, Any] = Field(default_factory=dict)


class StageInfo(Record):
    """What a stage handler reported beyond its metrics (a recipe run's ``info``)."""

    plan: PlanRecord | None = None
    history: list[dict[str, Any]] = Field(default_factory=list)


class StageRecord(Record):
    """One stage: its settings and, in recipe runs, the metrics of the model it produced."""

    index: int | None = None
    kind: str | None = None
    dir: str | None = None
    seconds: NonNegative | None = None
    settings: dict[str, Any] | None = None
    metrics: ModelRecord | None = None
    info: StageInfo | None = None
    accuracy: Fraction | None = None
    accuracy_before_finetune: Fraction | None = None
    plan: PlanRecord | None = None
    history: list[dict[str, Any]] = Field(default_factory=list)


class PointRecord(Record):
    """One evaluated model on the trade-off plots; cost fields may be missing (then it is not drawn)."""

    name: str
    stage: str | None = None
    accuracy: Fraction | None = None
    params: Count | None = None
    macs: Count | None = None
    size_bytes: Count | None = None
    latency_ms: NonNegative | None = None
    peak_activation_bytes: Count | None = None


class Results(Record):
    """The whole ``results.json``."""

    version: Annotated[int, Field(ge=1, le=SCHEMA_VERSION)]
    name: str | None = None
    job: dict[str, Any] | None = None
    recipe: str | None = Field(default=None, description="the recipe's YAML text, exactly as given")
    before: ModelRecord | None = None
    after: ModelRecord | None = None
    stages: Annotated[
        Annotated[dict[str, StageRecord], Tag("dict")] | Annotated[list[StageRecord], Tag("list")],
        Discriminator(_shape),
    ] = Field(default_factory=dict, description="stage name -> record (compress job), or a list of records")
    points: list[PointRecord] = Field(default_factory=list)
    pareto: list[
        Annotated[Annotated[PointRecord, Tag("dict")] | Annotated[str, Tag("str")], Discriminator(_shape)]
    ] = Field(
        default_factory=list, description="a search's non-dominated models: point records or point names"
    )
    calibration: CalibrationRecord | None = None
    threads: int | None = None
    wall_seconds: NonNegative | None = None


def _field_path(loc: tuple[int | str, ...]) -> str:
    """``('stages', 'prune', 'plan', 'keep')`` -> ``stages.prune.plan.keep``; list indices as ``[i]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("dict", "list", "str"):
            continue  # union branch tags (see _shape): not part of the user's field path
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _describe(exc: ValidationError, limit: int = 12) -> list[str]:
    lines: list[str] = []
    seen: set[str] = set()
    for err in exc.errors(include_url=False):
        path = _field_path(err["loc"])
        if path in seen:  # union branches repeat one field's problem: say it once
            continue
        seen.add(path)
        got = "" if err["type"] == "missing" else f" (got {json.dumps(err.get('input'), default=str)[:60]})"
        lines.append(f"  - {path}: {err['msg']}{got}")
    if len(lines) > limit:
        lines = [*lines[:limit], f"  ... and {len(lines) - limit} more"]
    return lines


def _readable_versions() -> str:
    return "version 1" if SCHEMA_VERSION == 1 else f"versions 1..{SCHEMA_VERSION}"


def validate_results(data: Any, source: str = "results.json") -> Results:
    """Check ``data`` against the schema; every problem is reported with its dotted field path."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a JSON object at the top level, got {type(data).__name__}")
    version = data.get("version")
    if version is None:
        raise ConfigError(
            f"{source}: missing field 'version'; netsculpt results files carry a schema version "
            f"(this netsculpt reads {_readable_versions()}). Rerun the job to rewrite the file."
        )
    if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
        raise ConfigError(
            f"{source}: schema version {version} was written by a newer netsculpt (this one reads "
            f"{_readable_versions()}); upgrade netsculpt to read it"
        )
    try:
        return Results.model_validate(data)
    except ValidationError as exc:
        problems = "\n".join(_describe(exc))
        raise ConfigError(
            f"{source} is not a valid netsculpt results file (schema version {SCHEMA_VERSION}):\n{problems}\n"
            "Fix the named fields, or rerun the job that wrote it."
        ) from None


def load_results(path: str | os.PathLike[str]) -> Results:
    """Read and validate a ``results.json`` file (or the one inside a run directory)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{str(path)!r} does not exist: pass a run directory (the --out of a run)")
    if path.is_dir():
        if not (path / "results.json").is_file():
            raise ConfigError(
                f"no results.json in {str(path)!r}: the run has not finished its measure stage; rerun "
                "`netsculpt compress ... --out` with this folder to resume it"
            )
        path = path / "results.json"
    from netsculpt.jsoncheck import read_json_file

    try:
        data = read_json_file(path, error=ConfigError)  # strict: no NaN, duplicate keys or huge files
    except ConfigError as exc:
        raise ConfigError(
            f"{exc}; was the run interrupted while writing it? Rerun the job to rewrite it."
        ) from None
    return validate_results(data, source=str(path))


def json_schema() -> dict[str, Any]:
    """The JSON-schema document for ``results.json`` (``netsculpt report --schema`` prints it)."""
    schema = Results.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = f"netsculpt results.json, schema version {SCHEMA_VERSION}"
    return schema
