"""The sections a recipe's stages are validated with (one pydantic model per stage kind).

Kept apart from :mod:`netsculpt.pipeline.recipe` (the recipe as a whole and its YAML reading) so each
file has one job; ``recipe`` re-exports every name here.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator


def _known(name: str, known: list[str], what: str) -> str:
    if name not in known:
        import difflib

        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ValueError(f"unknown {what} {name!r}; {hint}known: {', '.join(known)}")
    return name


def _channel_criterion(name: str) -> str:
    """Checked when the recipe is read: a typo must not surface after the baseline has trained."""
    from netsculpt.importance import list_criteria

    return _known(name, list_criteria(), "criterion")


def _block_criterion(name: str) -> str:
    """Block scores: output_change, sensitivity, or any channel criterion (summed over the block)."""
    from netsculpt.depth.criteria import BLOCK_CRITERIA
    from netsculpt.importance import list_criteria

    return _known(name, [*BLOCK_CRITERIA, *list_criteria()], "block criterion")


def _layer_key(text: str) -> str:
    """A module name, glob or class name (``Linear``, ``torch.nn.Linear``, ``Detect``): a misspelt
    ``torch.nn.`` class is refused when the recipe is read; names, globs and the model's own class names
    are checked against the model when the stage runs."""
    from netsculpt.allocate.per_layer import key_from_text
    from netsculpt.errors import ConfigError

    try:
        key_from_text(text)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None
    return text


ChannelCriterion = Annotated[str, AfterValidator(_channel_criterion)]
# ``ignored`` entries and ``ratios`` keys: read into names, globs or classes by ``layer_keys``
LayerKey = Annotated[str, AfterValidator(_layer_key)]


def layer_keys(texts: Any) -> Any:
    """A recipe's ``ignored`` list (or ``ratios`` dict keys) as ``ns.prune`` takes them."""
    from netsculpt.allocate.per_layer import key_from_text

    if isinstance(texts, dict):
        return {key_from_text(k): v for k, v in texts.items()}
    return [key_from_text(t) for t in texts]


BlockCriterion = Annotated[str, AfterValidator(_block_criterion)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EarlyStopSection(Section):
    """Hold ``holdout`` training images out and stop when their accuracy stalls (pipeline/holdout.py)."""

    holdout: int = Field(default=500, ge=1)
    patience: int = Field(default=3, ge=1)
    min_delta: float = Field(default=0.0, ge=0)
    min_epochs: int = Field(default=1, ge=1)
    restore_best: bool = True


class TrainSection(Section):
    """A training preset plus overrides of any TrainConfig field (epochs, lr, label_smoothing, ...)."""

    preset: str = "default"
    epochs: int | None = Field(default=None, ge=1)
    lr: float | None = Field(default=None, gt=0)
    batch_size: int | None = Field(default=None, ge=1)
    weight_decay: float | None = Field(default=None, ge=0)
    label_smoothing: float | None = Field(default=None, ge=0, lt=1)
    optimizer: str | None = None
    schedule: str | None = None
    warmup_epochs: int | None = Field(default=None, ge=0)
    augment: bool | None = None
    augment_shift: int | None = Field(default=None, ge=0)
    grad_clip: float | None = Field(default=None, gt=0)
    checkpoint_activations: bool | None = None
    bn_l1: float | None = Field(default=None, ge=0, lt=1)  # network slimming's lambda (docs/training.md)
    early_stop: EarlyStopSection | None = None

    def overrides(self) -> dict[str, Any]:
        skip = ("preset", "early_stop")
        return {k: v for k, v in self.model_dump().items() if k not in skip and v is not None}

    def train_config(self, seed: int) -> Any:
        """The stage's TrainConfig. A preset's warm-up that would fill a shorter run (``epochs`` set,
        ``warmup_epochs`` not) shrinks to leave one epoch after it; an explicit ``warmup_epochs`` is kept
        (and refused by TrainConfig when it leaves no epoch). Built when the recipe is read, too, so a
        bad combination is refused before any stage runs."""
        from netsculpt.train import PRESETS, TrainConfig

        overrides = self.overrides()
        preset = {**TrainConfig().to_dict(), **PRESETS.get(self.preset), **overrides}
        if "warmup_epochs" not in overrides and preset["warmup_epochs"] >= preset["epochs"]:
            overrides["warmup_epochs"] = preset["epochs"] - 1  # a short run keeps an epoch after warm-up
        return TrainConfig.preset(self.preset, seed=seed, **overrides)


def check_train_sections(recipe: Any) -> None:
    """Build every training stage's TrainConfig (preset + overrides + seed) when the recipe is read: a
    stage whose ``warmup_epochs`` leaves no epoch, or an unknown preset, was refused only when the stage
    started, after the stages before it had run."""
    from netsculpt.errors import NetsculptError

    sections = [] if recipe.baseline.checkpoint is not None else [("baseline.train", recipe.baseline.train)]
    sections += [(f"stages.{i}.{s.kind}", s) for i, s in enumerate(recipe.stages)]
    for where, section in sections:
        if isinstance(section, TrainSection):
            try:
                section.train_config(recipe.seed)
            except NetsculptError as exc:
                raise ValueError(f"{where}: {exc}") from None


class PruneStage(Section):
    kind: Literal["prune"] = "prune"
    criterion: ChannelCriterion = "l1"
    ratio: float | None = Field(default=None, ge=0, lt=1)
    target: dict[Literal["macs", "params", "channels"], float] | None = None
    widths: dict[str, int] | None = None
    # a ratio per layer, as ns.prune(ratios=): module name / glob / class name -> fraction removed;
    # later keys override earlier ones, every other group loses `ratio` (default 0)
    ratios: dict[LayerKey, Annotated[float, Field(ge=0, lt=1)]] | None = None
    strategy: Literal["global", "uniform", "fast"] = "global"
    calib_batches: int = Field(default=16, ge=1)
    ignored: list[LayerKey] = Field(default_factory=list)
    allow_inexact: bool = False
    # an integer step, "hw" (default: multiples of 8, or 16 in groups of 64+) or "auto" (measured on
    # deploy.runtime); see netsculpt.allocate.widths
    round_to: Annotated[int, Field(ge=1)] | Literal["hw", "auto"] = "hw"
    min_channels: int = Field(default=1, ge=1)
    iterative_steps: int = Field(default=1, ge=1)
    # least-squares refit of the layers that lost inputs, on the calibration batches (netsculpt.gpp.refit);
    # the ridge (relative to the inputs' mean square) keeps the refitted weights small enough to fine-tune:
    # at 1e-6..1e-2 a LeNet-5 at widths (2, 3) collapsed in its fine-tune (chosen on held-out digits)
    refit: bool = False
    refit_ridge: float = Field(default=0.1, ge=0)

    @model_validator(mode="after")
    def _one(self) -> PruneStage:
        if self.ratios is not None:
            return self._with_ratios()
        if sum(x is not None for x in (self.ratio, self.target, self.widths)) != 1:
            raise ValueError(
                "give exactly one of 'ratio', 'target' or 'widths' (or 'ratios', with or without 'ratio')"
            )
        return self

    def _with_ratios(self) -> PruneStage:
        """As ``ns.prune`` refuses them: ``ratios`` refines ``ratio``; a target or widths is another plan.
        With ``iterative_steps`` each layer reaches its ratio in rounds (``ns.prune_iteratively``)."""
        other = "target" if self.target is not None else "widths" if self.widths is not None else None
        if other is not None:
            raise ValueError(
                f"'ratios' sets a ratio per layer and goes with 'ratio' (what every other group loses), not "
                f"with '{other}'; to keep layers whole under a target list them in 'ignored'"
            )
        if self.round_to == "auto":
            raise ValueError("'ratios' with round_to: auto is not supported; use round_to: hw or a number")
        return self

    @model_validator(mode="after")
    def _iterative(self) -> PruneStage:
        """Checked when the recipe is read (before 2026-12-07 only once the stages before had run)."""
        if self.iterative_steps > 1 and self.target is None and self.ratios is None:
            raise ValueError(
                "iterative_steps > 1 needs a 'target' (each step prunes toward it) or 'ratios' (each layer "
                "reaches its ratio in steps)"
            )
        if self.iterative_steps > 1 and self.refit:
            raise ValueError("refit works with one-shot pruning; set iterative_steps: 1 or refit: false")
        return self


class FinetuneStage(TrainSection):
    kind: Literal["finetune"] = "finetune"
    preset: str = "default"

    def overrides(self) -> dict[str, Any]:
        return {k: v for k, v in super().overrides().items() if k != "kind"}


class DistillStage(TrainSection):
    kind: Literal["distill"] = "distill"
    preset: str = "default"
    temperature: float = Field(default=4.0, gt=0)
    alpha: float = Field(default=0.9, ge=0, le=1)
    hints: list[str | list[str]] = Field(default_factory=list)
    hint_weight: float = Field(default=1.0, ge=0)
    mixup: float = Field(default=0.0, ge=0)

    def overrides(self) -> dict[str, Any]:
        kd = {"kind", "temperature", "alpha", "hints", "hint_weight", "mixup"}
        return {k: v for k, v in super().overrides().items() if k not in kd}


class SearchStage(Section):
    kind: Literal["search"] = "search"
    method: Literal["sensitivity", "greedy", "genetic", "nsga2", "amc", "nao", "n2n"] = "greedy"
    target: dict[Literal["macs", "params", "latency"], float]
    criterion: ChannelCriterion = "l1"
    val_size: int | None = Field(default=None, ge=1)  # None: 500, or a fifth of a smaller training split
    ignored: list[LayerKey] = Field(default_factory=list)  # kept whole, as the prune stage's
    options: dict[str, Any] = Field(default_factory=dict)


class ClusterStage(Section):
    kind: Literal["cluster"] = "cluster"
    method: Literal["dkm", "kmeans"] = "dkm"
    bits: Annotated[int, Field(ge=1, le=8)] | Literal["auto"] = 4
    budget_bytes: int | None = Field(default=None, ge=1)  # bits: auto -> bits per layer under this size
    bit_search: Literal["agent", "genetic", "nsga2"] = "agent"
    epochs: int = Field(default=3, ge=0)
    lr: float | None = Field(default=None, gt=0)
    options: dict[str, Any] = Field(default_factory=dict)


class SparsifyStage(TrainSection):
    """Zero weights in a pattern and train (netsculpt.sparsity); ``epochs`` is the total over all phases."""

    kind: Literal["sparsify"] = "sparsify"
    preset: str = "finetune"
    sparsity: float = Field(default=0.9, ge=0, lt=1)
    pattern: str = "unstructured"
    block: tuple[int, int] = (4, 4)
    scope: Literal["auto", "layer", "global", "erk"] = "auto"
    method: Literal["magnitude", "gap"] = "magnitude"
    schedule: Literal["oneshot", "gradual"] = "oneshot"
    partitions: int = Field(default=4, ge=1)
    restart_lr: bool = True  # False: one lr schedule over every phase, as dense training gets
    skip: list[str] = Field(default_factory=list)

    def overrides(self) -> dict[str, Any]:
        own = {"kind", "sparsity", "pattern", "block", "scope", "method", "schedule", "partitions", "skip"}
        own.add("restart_lr")
        return {k: v for k, v in super().overrides().items() if k not in own}


class QuantizeStage(Section):
    """int8 on ``runtime``; ``auto`` keeps the fastest within ``tolerance_pp`` (docs/weights.md)."""

    kind: Literal["quantize"] = "quantize"
    calib_batches: int = Field(default=8, ge=1)
    runtime: Literal["onnxruntime", "openvino", "torch", "auto"] = "onnxruntime"
    tolerance_pp: float = Field(default=1.0, ge=0)  # auto: drop (pp) of the task metric allowed, held-out
    select_batches: int = Field(default=8, ge=1)  # auto: training batches after the calibration ones
    # auto, when no int8 candidate is faster than the float model: keep the float model, or int8 anyway
    if_slower: Literal["float", "int8"] = "float"
    # auto, when no int8 candidate is within tolerance_pp: keep the float model, or stop the run
    if_inaccurate: Literal["float", "fail"] = "float"
    options: dict[str, Any] = Field(default_factory=dict)
    # task: detection: the int8 part; unset: backbone+head where the detector has a model.head
    part: Literal["backbone", "backbone+head"] | None = None
    # task: detection, backbone+head: the head's prediction convs float; unset: on OpenVINO (measured)
    float_predictors: bool | None = None

    @model_validator(mode="after")
    def _options(self) -> QuantizeStage:
        """``options`` are ONNX Runtime's Int8Config fields: refused on another runtime when the recipe is
        read (before, only once every earlier stage had run; ``auto`` ignored them silently)."""
        if self.options and self.runtime != "onnxruntime":
            raise ValueError(
                f"options ({', '.join(map(str, self.options))}) are ONNX Runtime's Int8Config fields, and "
                f"runtime {self.runtime} takes none; remove them or use runtime: onnxruntime"
            )
        if self.float_predictors is not None and self.runtime in ("auto", "torch"):
            raise ValueError(
                f"float_predictors keeps chosen convs float on onnxruntime or openvino, not runtime "
                f"{self.runtime} (auto compares each runtime at its default); remove it or choose one of them"
            )
        if self.float_predictors:
            from netsculpt.weights.int8_predictors import check_part

            try:
                check_part(self.part)
            except Exception as exc:
                raise ValueError(str(exc)) from None
        return self


class PruneDepthStage(Section):
    """Remove residual blocks (netsculpt.depth): a count, names, or a MACs / params / latency target."""

    kind: Literal["prune_depth"] = "prune_depth"
    blocks: int | list[str] | None = None
    target: dict[Literal["macs", "params", "latency"], float] | None = None
    criterion: BlockCriterion = "output_change"
    calib_batches: int = Field(default=4, ge=1)
    val_size: int | None = Field(default=None, ge=1)  # held out of the training split for scores
    fold: bool = False  # also fold BatchNorms and linear convs after removal

    @model_validator(mode="after")
    def _one(self) -> PruneDepthStage:
        if (self.blocks is None) == (self.target is None):
            raise ValueError("give exactly one of 'blocks' or 'target'")
        return self


class CompoundStage(Section):
    """Depth x width x resolution together to a MACs budget (netsculpt.depth.compound), optionally under a
    measured latency cap; every later stage trains, evaluates and measures at the new input size."""

    kind: Literal["compound"] = "compound"
    macs: float = Field(gt=0, le=1)
    latency: float | None = Field(default=None, gt=0, le=1)  # fraction of the input model's latency
    criterion: ChannelCriterion = "l1"  # width
    depth_criterion: BlockCriterion = "output_change"
    val_size: int | None = Field(default=None, ge=1)  # held out of the training split for scores


class GrowStage(Section):
    """Grow-Push-Prune's grow, same function: ``layers`` get more output channels (netsculpt.gpp.grow),
    ``branches`` get a parallel conv such as ``{conv2: "1x1:4"}`` (netsculpt.gpp.grow_branch); widening
    runs first."""

    kind: Literal["grow"] = "grow"
    layers: dict[str, Annotated[int, Field(ge=1, le=1 << 16)]] = Field(default_factory=dict)
    branches: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _something(self) -> GrowStage:
        from netsculpt.errors import ConfigError
        from netsculpt.gpp.branch import parse_branches

        if not self.layers and not self.branches:
            raise ValueError(
                "give 'layers' (channels to add, e.g. {conv2: 14}) or 'branches' (e.g. {conv2: 1x1:4})"
            )
        for layer, spec in self.branches.items():
            try:
                parse_branches(layer, spec)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return self


class PushStage(TrainSection):
    """Grow-Push-Prune's push: training that alternates the task loss with the deep-LDA push loss on
    ``layers`` (default: the layers the gpp criterion scores), so a later ``gpp`` prune keeps few channels."""

    kind: Literal["push"] = "push"
    preset: str = "finetune"
    layers: list[str] | None = None
    push_weight: float = Field(default=0.03, ge=0)  # chosen on held-out digits (docs/gpp.md)
    cov_weight: float = Field(default=0.1, ge=0)
    task_in_push: float = Field(default=1.0, ge=0)
    momentum: float = Field(default=0.0, ge=0, lt=1)
    sparse_weight: float = Field(default=0.0, ge=0)
    keep: dict[str, int] = Field(default_factory=dict)  # push layer -> channels the prune keeps
    rest_weight: float = Field(default=0.0, ge=0)  # activity share outside the kept set (with keep)
    shrink: float = Field(default=0.0, ge=0)  # the kept set's gpp scores: as the prune's (gpp_reg: 1)
    grid: int = Field(default=1, ge=1)  # ... and the prune criterion's grid

    def overrides(self) -> dict[str, Any]:
        own = {"kind", "layers", "push_weight", "cov_weight", "task_in_push", "momentum", "sparse_weight",
               "keep", "rest_weight", "shrink", "grid"}  # fmt: skip
        return {k: v for k, v in super().overrides().items() if k not in own}


STAGE_MODELS: dict[str, type[Section]] = {
    "prune": PruneStage,
    "finetune": FinetuneStage,
    "distill": DistillStage,
    "search": SearchStage,
    "cluster": ClusterStage,
    "sparsify": SparsifyStage,
    "quantize": QuantizeStage,
    "prune_depth": PruneDepthStage,
    "compound": CompoundStage,
    "grow": GrowStage,
    "push": PushStage,
}


StageConfig = Annotated[
    PruneStage
    | FinetuneStage
    | DistillStage
    | SearchStage
    | ClusterStage
    | SparsifyStage
    | QuantizeStage
    | PruneDepthStage
    | CompoundStage
    | GrowStage
    | PushStage,
    Field(discriminator="kind"),
]
