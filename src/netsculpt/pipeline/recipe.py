"""Recipes: one YAML file declares the model, the data, the baseline, the stages and the outputs.

Recipes are loaded with ``yaml.safe_load`` semantics (no code, no Python objects) and validated with
pydantic; an error names the field and the line it is on. ``--set a.b=value`` overrides any field.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator

from netsculpt.errors import ConfigError
from netsculpt.pipeline.recipe_stages import (  # noqa: F401  (re-exported: the stage sections)
    STAGE_MODELS,
    ClusterStage,
    CompoundStage,
    DistillStage,
    EarlyStopSection,
    FinetuneStage,
    GrowStage,
    PruneDepthStage,
    PruneStage,
    PushStage,
    QuantizeStage,
    SearchStage,
    Section,
    SparsifyStage,
    StageConfig,
    TrainSection,
    check_train_sections,
)

RECIPE_VERSION = 1
STAGE_KINDS = tuple(STAGE_MODELS)


class ModelSection(Section):
    name: str = "lenet5"
    num_classes: int | None = None
    in_channels: int | None = None
    checkpoint: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)


class DataSection(Section):
    name: str = "mnist5k"
    root: str | None = None
    resize: int | None = None
    channels: int | None = None
    limit: int | None = Field(default=None, ge=1)
    batch_size: int | None = Field(default=None, ge=1)
    options: dict[str, Any] = Field(default_factory=dict)


class BaselineSection(Section):
    """Train the unpruned model, or load it from a checkpoint (state dict or saved netsculpt model)."""

    train: TrainSection | None = None
    checkpoint: str | None = None

    @model_validator(mode="after")
    def _one(self) -> BaselineSection:
        if (self.train is None) == (self.checkpoint is None):
            raise ValueError("give exactly one of 'train' or 'checkpoint'")
        return self


class ExplainSection(Section):
    """``outputs.explain``: ``true`` / ``false``, or a mapping of the knobs ``netsculpt explain`` takes
    (a mapping turns it on unless it says ``enabled: false``). CHIP's cost is ``classes x layers x
    masks`` forward passes; ``masks`` and ``calib_images`` are what bring it down on a large model."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    enabled: bool = False
    layers: list[str] | None = None  # --layers (default: the last two conv layers that run)
    images: int = Field(default=8, ge=1)  # --images: test images maps are drawn on
    target: str | int = Field(default="label", alias="class")  # --class: label, predicted or an index
    calib_images: int = Field(default=320, ge=1)  # --calib-images: training images CHIP learns from
    masks: int = Field(default=256, ge=1)  # --masks: random channel masks per class and layer
    sparsity: float = Field(default=0.05, gt=0, lt=1)  # --sparsity: Lasso strength (fraction)

    @field_validator("target")
    @classmethod
    def _target(cls, v: str | int) -> str | int:
        if isinstance(v, str) and v.strip().isdigit():
            v = int(v)
        if v in ("label", "predicted") or (isinstance(v, int) and not isinstance(v, bool) and v >= 0):
            return v
        raise ValueError(f"class is 'label', 'predicted' or a class index >= 0, got {v!r}")

    def run_options(self) -> dict[str, Any]:
        """The keyword arguments of :func:`netsculpt.explain.runner.explain_run`."""
        from netsculpt.explain.chip_maps import Perturbation

        perturbation = Perturbation(masks=self.masks, sparsity=self.sparsity)
        return {"layers": self.layers, "images": self.images, "target": self.target,
                "calib_images": self.calib_images, "perturbation": perturbation,
                "calib_option": "outputs.explain.calib_images"}  # fmt: skip


EXPLAIN_KEYS = ("enabled", "layers", "images", "class", "calib_images", "masks", "sparsity")


class OutputsSection(Section):
    latency_runs: int = Field(default=30, ge=1)
    onnx: bool = False
    report: bool = True
    # interpretation maps of baseline vs final model into RUN_DIR/explain (docs/explain.md)
    explain: ExplainSection = Field(default_factory=ExplainSection)

    @field_validator("explain", mode="before")
    @classmethod
    def _explain(cls, v: Any) -> Any:
        """``true`` / ``false``, or a mapping naming only the known knobs (a typo is named, not ignored)."""
        if isinstance(v, bool):
            return {"enabled": v}
        if isinstance(v, ExplainSection):
            return v
        what = f"outputs.explain is true, false or a mapping of {', '.join(EXPLAIN_KEYS)} (the options of "
        if not isinstance(v, dict):
            raise ValueError(f"{what}`netsculpt explain`), got {v!r}")
        unknown = [str(k) for k in v if k not in EXPLAIN_KEYS]
        if unknown:
            import difflib

            close = difflib.get_close_matches(unknown[0], EXPLAIN_KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"unknown key {unknown[0]!r}{hint}; {what}`netsculpt explain`)")
        return {"enabled": True, **v}


class DeploySection(Section):
    """Where the model will run: the runtime (and threads, batch) that ``round_to: auto``, latency
    targets, searches and the after-stage latency guards (netsculpt.pipeline.guards) measure on."""

    runtime: str = "torch"
    threads: int = Field(default=1, ge=1)
    batch: int = Field(default=1, ge=1)
    guard: bool = True  # time each prune/search/cluster/quantize stage's output against its input
    fail_if_slower: bool = False  # stop the run when a guarded stage's output is slower than its input
    slower_margin: float = Field(default=0.05, ge=0, lt=1)  # "slower": more than this fraction slower
    guard_runs: int = Field(default=5, ge=1)  # timed runs per round (3 alternating rounds, median)

    @field_validator("runtime")
    @classmethod
    def _runtime(cls, v: str) -> str:
        from netsculpt.measure.latency import RUNTIMES

        if v not in RUNTIMES:
            raise ValueError(f"unknown runtime {v!r}; choose one of {', '.join(RUNTIMES)}")
        return v


class Recipe(Section):
    version: int = RECIPE_VERSION
    name: str = "run"
    seed: int = 0
    model: ModelSection = Field(default_factory=ModelSection)
    data: DataSection = Field(default_factory=DataSection)
    baseline: BaselineSection = Field(default_factory=lambda: BaselineSection(train=TrainSection()))
    stages: list[StageConfig] = Field(default_factory=list)
    outputs: OutputsSection = Field(default_factory=OutputsSection)
    deploy: DeploySection = Field(default_factory=DeploySection)
    # classification, detection or segmentation (netsculpt.tasks): the loss, metric and batching every
    # stage uses; dense tasks read digits_detect / digits_seg (netsculpt.pipeline.dense)
    task: str = "classification"
    # rerun the stages from the same baseline with every criterion replaced by "random": did the
    # criterion matter, or did the fine-tuning do the work?
    compare_random: bool = False

    @field_validator("version")
    @classmethod
    def _version(cls, v: int) -> int:
        if v > RECIPE_VERSION:
            raise ValueError(
                f"recipe version {v} is newer than this netsculpt understands ({RECIPE_VERSION})"
            )
        return v

    @model_validator(mode="after")
    def _model_name(self) -> Recipe:
        """A misspelt model is refused when the recipe is read, not when the baseline stage starts (a
        saved baseline checkpoint carries its own architecture, so the name is not used then)."""
        if self.baseline.checkpoint is None:
            from netsculpt.errors import NetsculptError
            from netsculpt.models.factory import check_model_name

            try:
                check_model_name(self.model.name)
            except NetsculptError as exc:
                raise ValueError(f"model.name: {exc}") from None
        return self

    @model_validator(mode="after")
    def _quantize_last(self) -> Recipe:
        """A quantize stage's output is an int8 ONNX Runtime / OpenVINO model, which no later stage can
        train, prune, cluster or quantize again: refuse the order before any work, not after it."""
        for i, stage in enumerate(self.stages[:-1]):
            if stage.kind == "quantize":
                later = ", ".join(s.kind for s in self.stages[i + 1 :])
                raise ValueError(
                    f"stages.{i}: quantize must be the last stage (its output is an int8 ONNX Runtime / "
                    f"OpenVINO model); move {later} before it"
                )
        return self

    @model_validator(mode="after")
    def _train_configs(self) -> Recipe:
        check_train_sections(self)
        return self

    @model_validator(mode="after")
    def _task(self) -> Recipe:
        from netsculpt.pipeline.dense import check_dense_recipe

        check_dense_recipe(self)
        return self

    @model_validator(mode="before")
    @classmethod
    def _stage_kinds(cls, data: Any) -> Any:
        """``- prune: {...}`` in YAML becomes ``{"kind": "prune", ...}`` for the tagged union."""
        if not isinstance(data, dict) or "stages" not in data:
            return data
        items = data["stages"]
        if not isinstance(items, list):
            raise ValueError(
                "'stages' is a list of one-key mappings like '- prune: {criterion: l1, ratio: 0.5}'"
            )
        out = []
        for item in items:
            if not isinstance(item, dict) or len(item) != 1:
                raise ValueError(
                    f"each stage is a one-key mapping (one of {', '.join(STAGE_KINDS)}), got {item!r}"
                )
            ((kind, body),) = item.items()
            if kind not in STAGE_MODELS:
                raise ValueError(f"unknown stage {kind!r}; stages are: {', '.join(STAGE_KINDS)}")
            if body is not None and not isinstance(body, dict):
                raise ValueError(f"stage {kind!r} takes a mapping of settings, got {type(body).__name__}")
            out.append({**(body or {}), "kind": kind})
        return {**data, "stages": out}


def _line_index(text: str) -> dict[tuple[Any, ...], int]:
    """Map each key path of the YAML document to its line number (1-based), for error messages."""
    lines: dict[tuple[Any, ...], int] = {}

    def walk(node: yaml.Node, path: tuple[Any, ...]) -> None:
        lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                lines[(*path, key.value)] = key.start_mark.line + 1
                walk(value, (*path, key.value))
        elif isinstance(node, yaml.SequenceNode):
            for i, value in enumerate(node.value):
                walk(value, (*path, i))

    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if root is not None:
        walk(root, ())
    return lines


def _set(data: dict[str, Any], dotted: str, raw: str) -> None:
    keys = dotted.split(".")
    node: Any = data
    for k in keys[:-1]:
        key: Any = int(k) if isinstance(node, list) else k
        if isinstance(node, dict):
            node = node.setdefault(key, {})
        else:
            node = node[key]
    value = yaml.safe_load(raw)
    last = keys[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


MAX_RECIPE_BYTES = 1 << 20
MAX_RECIPE_NODES = 100_000  # after aliases are expanded: a real recipe has a few hundred
MAX_RECIPE_DEPTH = 32


def _check_yaml_bounds(text: str, source: str) -> None:
    """Refuse what safe_load cannot: alias bombs ("billion laughs"), deep nesting and huge texts."""
    if len(text) > MAX_RECIPE_BYTES:
        raise ConfigError(f"{source}: {len(text):,} characters is too long for a recipe")
    depth = 0
    for char in text:  # flow-style nesting, counted before the (recursive) YAML composer sees it
        depth += (char in "[{") - (char in "]}")
        if depth > MAX_RECIPE_DEPTH:
            raise ConfigError(f"{source}: nested more than {MAX_RECIPE_DEPTH} levels deep")
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply to be a recipe") from None
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def expanded(node: yaml.Node, depth: int) -> int:
        if depth > MAX_RECIPE_DEPTH:
            raise ConfigError(f"{source}: nested more than {MAX_RECIPE_DEPTH} levels deep")
        if id(node) in open_nodes:
            raise ConfigError(f"{source}:{node.start_mark.line + 1}: an alias refers to itself")
        if id(node) not in sizes:
            children: list[yaml.Node] = []
            if isinstance(node, yaml.MappingNode):
                children = [part for pair in node.value for part in pair]
            elif isinstance(node, yaml.SequenceNode):
                children = list(node.value)
            open_nodes.add(id(node))
            sizes[id(node)] = min(1 + sum(expanded(c, depth + 1) for c in children), MAX_RECIPE_NODES + 1)
            open_nodes.discard(id(node))
        return sizes[id(node)]

    if root is not None and expanded(root, 0) > MAX_RECIPE_NODES:
        raise ConfigError(f"{source}: its aliases expand to more than {MAX_RECIPE_NODES:,} values")


def parse_recipe(text: str, *, source: str = "<recipe>", overrides: list[str] = ()) -> Recipe:
    """Validate recipe ``text``; ``overrides`` are ``"a.b.c=value"`` strings (values parsed as YAML)."""
    try:
        _check_yaml_bounds(text, source)
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a recipe is a YAML mapping (model:, data:, stages: ...)")
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ConfigError(f"override {item!r} must look like section.field=value")
        try:
            _set(data, key.strip(), raw)
        except (KeyError, IndexError, ValueError, TypeError):
            raise ConfigError(f"override {item!r}: no such place in the recipe") from None
    _check_stage_names(data, text, source)
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        lines = _line_index(text)
        msgs = []
        for err in exc.errors():
            yaml_loc, msg = _yaml_path(tuple(err["loc"]), data), err["msg"]
            named = None if yaml_loc else re.match(r"Value error, ([\w.]+): (.*)", msg, flags=re.S)
            if named and named[1].split(".")[0] in data:  # a whole-recipe check names its field: use its line
                yaml_loc, msg = tuple(int(p) if p.isdigit() else p for p in named[1].split(".")), named[2]
            line = next(
                (lines[yaml_loc[:n]] for n in range(len(yaml_loc), -1, -1) if yaml_loc[:n] in lines), None
            )
            where = ".".join(str(p) for p in yaml_loc) or "(top level)"
            msgs.append(f"{source}{f':{line}' if line else ''}: {where}: {msg}")
        raise ConfigError("invalid recipe\n  " + "\n  ".join(msgs)) from None


def _check_stage_names(data: dict[str, Any], text: str, source: str) -> None:
    """An unknown stage, named at its own line (the whole-recipe validator can only say line 1)."""
    import difflib

    stages = data.get("stages")
    for i, item in enumerate(stages if isinstance(stages, list) else []):
        kind = next(iter(item)) if isinstance(item, dict) and len(item) == 1 else None
        if kind is not None and kind not in STAGE_MODELS:
            line = _line_index(text).get(("stages", i))
            close = difflib.get_close_matches(str(kind), STAGE_KINDS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            where = f"{source}:{line}" if line else source
            raise ConfigError(
                f"invalid recipe\n  {where}: stages.{i}: unknown stage {kind!r}; {hint}stages are: "
                f"{', '.join(STAGE_KINDS)}"
            )


def _yaml_path(loc: tuple[Any, ...], data: dict[str, Any]) -> tuple[Any, ...]:
    """Pydantic's error location as a path in the YAML document (a stage's tag is its YAML key)."""
    return tuple(p for p in loc if not (isinstance(p, str) and p.startswith(("function-", "model-"))))


def load_recipe(path: str | os.PathLike[str], overrides: list[str] = ()) -> tuple[Recipe, str]:
    """Read and validate a recipe file; returns the recipe and its text (kept in the run folder)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"recipe {str(path)!r} does not exist")
    text = path.read_text()
    return parse_recipe(text, source=str(path), overrides=list(overrides)), text


def default_recipe_path() -> Path:
    """The recipe `netsculpt compress` runs with no argument (a copy of examples/lenet5_mnist5k.yaml)."""
    return Path(__file__).with_name("recipes") / "lenet5_mnist5k.yaml"
