"""Stage handlers: one function per recipe stage kind, each ``(ctx, config, model) -> (model, info)``.

Handlers import the parts they need lazily, so a recipe that never clusters never imports clustering.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from netsculpt.errors import ConfigError
from netsculpt.modes import module_modes, restore_modes
from netsculpt.pipeline.holdout import early_stop_info, stage_loaders
from netsculpt.pipeline.recipe import (
    BaselineSection,
    DistillStage,
    FinetuneStage,
    PruneStage,
    QuantizeStage,
    Recipe,
    SearchStage,
    TrainSection,
)
from netsculpt.pipeline.recipe_stages import layer_keys


@dataclass
class RunContext:
    """What every stage may use: the recipe, data, the example input and the unpruned teacher."""

    recipe: Recipe
    run_dir: Path
    example: torch.Tensor
    train_loader: Any
    test_loader: Any
    num_classes: int
    in_channels: int
    teacher: nn.Module | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    make_train_loader: Callable[[bool, int | None], Any] | None = None
    trust_builder: str | None = None  # the builder the user allows netsculpt.load to run (docs/security.md)
    task: Any = None  # a dense netsculpt.tasks.Task (detection, segmentation); None: classification
    make_loaders: Callable[[bool, int | None], Any] | None = None  # (train, test) at recipe.data.resize
    _loader_start: list[torch.Tensor] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        from netsculpt.train.checkpoint import loader_generators

        self._loader_start = [g.get_state() for g in loader_generators(self.train_loader)]

    def reset_random_state(self) -> None:
        """Put every generator a stage may draw from where it was when the run began: the global torch,
        numpy and Python ones (seeded with the recipe's seed) and the shared training loader's shuffle
        order. A stage is then a function of its input model and settings alone, so it computes the same
        whether the stages before it ran in this process or were loaded on resume after a crash."""
        import random

        import numpy as np

        from netsculpt.train.checkpoint import loader_generators

        seed = self.recipe.seed
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        random.seed(seed)
        for gen, state in zip(loader_generators(self.train_loader), self._loader_start, strict=True):
            gen.set_state(state)

    def set_resolution(self, size: int | Sequence[int]) -> None:
        """Every later stage feeds ``size`` (H, W) inputs (a compound stage changed the resolution; an
        int is a square side, as stage records before 2026-12-07 hold it): the recipe's ``data.resize``,
        the example input, both loaders and their shuffle state follow."""
        from netsculpt.errors import ConfigError
        from netsculpt.train.checkpoint import loader_generators

        if self.task is not None or self.make_loaders is None:
            raise ConfigError("a resolution change (compound stage) is supported for classification recipes")
        height, width = (size, size) if isinstance(size, int) else (int(s) for s in size)
        self.recipe.data.resize = height if height == width else (height, width)  # load_dataset takes both
        self.train_loader, self.test_loader = self.make_loaders(False, None)
        shape = (*self.example.shape[:2], height, width)
        self.example = torch.randn(shape, generator=torch.Generator().manual_seed(self.recipe.seed))
        self._loader_start = [g.get_state() for g in loader_generators(self.train_loader)]

    def evaluate(self, model: nn.Module) -> tuple[float, float | None, dict[str, float]]:
        """``(accuracy, loss, task metrics)`` on the test split; a dense task's headline metric (mAP,
        mIoU) is the accuracy, with no loss, and all its metrics in the dict."""
        if self.task is not None:
            scores = self.task.evaluate(model, self.test_loader)
            return float(scores[self.task.metric]), None, scores
        from netsculpt.train import evaluate

        accuracy, loss = evaluate(model, self.test_loader)
        return accuracy, loss, {}

    def train_loader_for(self, config: Any) -> Any:
        """A fresh training loader with ``config``'s augmentation. Fresh, so a stage sees the same batches
        whether the stages before it ran in this process or were skipped on resume; per stage, because a
        heavily pruned net can underfit the baseline's shifts."""
        if self.make_train_loader is None:
            return self.train_loader
        return self.make_train_loader(bool(config.augment), config.augment_shift)


Handler = Callable[[RunContext, Any, nn.Module | None, Path], tuple[nn.Module, dict[str, Any]]]
STAGES: dict[str, Handler] = {}


def stage(kind: str) -> Callable[[Handler], Handler]:
    def add(fn: Handler) -> Handler:
        STAGES[kind] = fn
        return fn

    return add


def train_config(ctx: RunContext, section: TrainSection) -> Any:
    return section.train_config(ctx.recipe.seed)


def check_fits(ctx: RunContext, model: nn.Module, what: str) -> nn.Module:
    """Run the data's example image through the baseline before training it: a model that cannot take
    it (a timm ViT built for 224 px given 32 px digits) is refused with the recipe fields to change,
    not a traceback from inside its forward after the data loaded."""
    if ctx.task is not None:  # a detector / segmenter: its own batching, checked by its task
        return model
    training = model.training
    try:
        with torch.no_grad():
            model.eval()(ctx.example)
    except Exception as exc:
        raise ConfigError(
            f"model {what!r} cannot take the data's images of shape {tuple(ctx.example.shape[1:])} "
            f"({type(exc).__name__}: {str(exc)[:160]}); set data.resize / data.channels to what it takes, "
            "or build it for that size with model.options (e.g. img_size: 32 for a timm ViT, input_size: 32 "
            "for lenet5)"
        ) from None
    finally:
        model.train(training)
    return model


def shaped(model: nn.Module, ctx: RunContext) -> nn.Module:
    """A model the run just built with random weights, its lazy layers (``nn.LazyLinear``) given their
    shapes by one eval forward of the run's example input: ``train`` refuses shapeless layers, and
    here no weight of the user's can change (a checkpoint fills them through ``load_state_dict``). For a
    classification task :func:`check_fits` has already run that forward; a dense task's model gets it here."""
    from torch.nn.parameter import is_lazy

    if any(is_lazy(t) for t in (*model.parameters(), *model.buffers())):
        modes = module_modes(model)
        with torch.no_grad():
            model.eval()(ctx.example[:1])
        restore_modes(modes)
    return model


@stage("baseline")
def baseline(
    ctx: RunContext, cfg: BaselineSection, model: nn.Module | None, out: Path
) -> tuple[nn.Module, dict]:
    from netsculpt.io import is_saved_model, load
    from netsculpt.models import create_model
    from netsculpt.train import train

    m = ctx.recipe.model
    if cfg.checkpoint is not None:
        if is_saved_model(cfg.checkpoint):
            loaded = load(cfg.checkpoint, trust_builder=ctx.trust_builder)
            return check_fits(ctx, loaded, cfg.checkpoint), {"checkpoint": cfg.checkpoint}
        built = create_model(
            m.name,
            num_classes=ctx.num_classes,
            in_channels=ctx.in_channels,
            checkpoint=cfg.checkpoint,
            **m.options,
        )
        return check_fits(ctx, built, m.name), {"checkpoint": cfg.checkpoint}
    built = shaped(
        check_fits(
            ctx,
            create_model(m.name, num_classes=ctx.num_classes, in_channels=ctx.in_channels, **m.options),
            m.name,
        ),
        ctx,
    )
    config = train_config(ctx, cfg.train)
    loader, val, stop = stage_loaders(ctx, cfg.train, config)
    result = train(built, loader, ctx.test_loader, config, out_dir=out / "checkpoints", resume=True,
                   val_loader=val, early_stopping=stop, task=ctx.task)  # fmt: skip
    return built, {"train": config.to_dict(), "history": result.history, **early_stop_info(cfg.train, result)}


@stage("prune")
def prune(ctx: RunContext, cfg: PruneStage, model: nn.Module, out: Path) -> tuple[nn.Module, dict]:
    from netsculpt.allocate import Target
    from netsculpt.iterative import PlanRecorder, prune_iteratively
    from netsculpt.prune import apply_plan, plan_pruning

    target = Target(**cfg.target) if cfg.target else None
    options = {
        "criterion": cfg.criterion,
        "strategy": cfg.strategy,
        "data": ctx.train_loader,
        "calib_batches": cfg.calib_batches,
        "ignored": layer_keys(cfg.ignored),
        "allow_inexact": cfg.allow_inexact,
        "round_to": cfg.round_to,
        "min_channels": cfg.min_channels,
        "runtime": ctx.recipe.deploy.runtime,
        "threads": ctx.recipe.deploy.threads,
        **({"task": ctx.task} if ctx.task is not None else {}),
    }
    ratios = layer_keys(cfg.ratios) if cfg.ratios is not None else None
    if cfg.iterative_steps > 1:  # with a target or ratios, without refit: the recipe check (PruneStage)
        per_layer = {"ratios": ratios, "ratio": cfg.ratio} if ratios is not None else {}
        steps, rounds = cfg.iterative_steps, PlanRecorder()  # rounds compose into the original's plan
        pruned = prune_iteratively(model, ctx.example, steps=steps, target=target, on_round=rounds,
                                   **per_layer, **options)  # fmt: skip
        if (composed := rounds.composed()) is None:  # nothing removed, or the rounds' groups differ
            return pruned, {"iterative_steps": steps}
        composed.save(out / "plan.json")
        return pruned, {"iterative_steps": steps, "plan": composed.to_dict()}
    plan, graph = plan_pruning(
        model, ctx.example, ratio=cfg.ratio, target=target, widths=cfg.widths, ratios=ratios, **options
    )
    plan.save(out / "plan.json")
    pruned = apply_plan(model, plan, ctx.example, graph=graph)
    if not cfg.refit:
        return pruned, {"plan": plan.to_dict()}
    import itertools

    from netsculpt.gpp import kept_outputs, refit_consumers_

    calib = list(itertools.islice(ctx.train_loader, cfg.calib_batches))
    kept = kept_outputs(graph, plan)
    residual = refit_consumers_(model, pruned, calib, kept_out=kept, ridge=cfg.refit_ridge, max_batches=None)
    return pruned, {"plan": plan.to_dict(), "refit_residual": residual}


@stage("finetune")
def finetune(ctx: RunContext, cfg: FinetuneStage, model: nn.Module, out: Path) -> tuple[nn.Module, dict]:
    from netsculpt.train import train

    config = train_config(ctx, cfg)
    loader, val, stop = stage_loaders(ctx, cfg, config)
    result = train(model, loader, ctx.test_loader, config, out_dir=out / "checkpoints", resume=True,
                   val_loader=val, early_stopping=stop, task=ctx.task)  # fmt: skip
    return model, {"train": config.to_dict(), "history": result.history, **early_stop_info(cfg, result)}


@stage("distill")
def distill(ctx: RunContext, cfg: DistillStage, model: nn.Module, out: Path) -> tuple[nn.Module, dict]:
    from netsculpt.train.distill import DistillConfig
    from netsculpt.train.distill import distill as run_distill

    if ctx.teacher is None:
        raise ConfigError("the distill stage needs the baseline model as teacher")
    config = train_config(ctx, cfg)
    kd = DistillConfig(
        temperature=cfg.temperature,
        alpha=cfg.alpha,
        hints=list(cfg.hints),
        hint_weight=cfg.hint_weight,
        mixup=cfg.mixup,
    )
    loader, val, stop = stage_loaders(ctx, cfg, config)
    result = run_distill(
        model,
        ctx.teacher,
        loader,
        ctx.test_loader,
        config,
        kd,
        out_dir=out / "checkpoints",
        resume=True,
        val_loader=val,
        early_stopping=stop,
        task=ctx.task,
    )
    info = {"train": config.to_dict(), "kd": cfg.model_dump(), "history": result.history}
    return model, {**info, **early_stop_info(cfg, result)}


@stage("search")
def search(ctx: RunContext, cfg: SearchStage, model: nn.Module, out: Path) -> tuple[nn.Module, dict]:
    """Search per-group widths for the target, then cut the model to the winner (fine-tune in a later
    stage). Candidates are scored on ``val_size`` stratified samples held out of the training split
    (default 500, or a fifth of a smaller split), never on the test split the run reports: that would
    tune the result to its own exam."""
    from torch.utils.data import DataLoader

    from netsculpt.search import CONFIGS, SearchConfig, apply_search_plan, search_widths
    from netsculpt.search.holdout import default_val_size, split_holdout

    options = {"criterion": cfg.criterion, "seed": ctx.recipe.seed,
               "latency_runtime": ctx.recipe.deploy.runtime, **cfg.options}  # fmt: skip
    config = CONFIGS.get(cfg.method, SearchConfig)(**options)
    target = ",".join(f"{k}={v}" for k, v in cfg.target.items())
    dataset = ctx.train_loader.dataset
    val_size = cfg.val_size or default_val_size(len(dataset))
    if val_size >= len(dataset):
        raise ConfigError(
            f"search.val_size={val_size} leaves no training data ({len(dataset)} samples); "
            f"use a smaller val_size"
        )
    if ctx.task is not None:  # canvases held out of the training canvases, batched by the task
        from netsculpt.pipeline.dense import held_out_loaders

        train_part, held_out = held_out_loaders(ctx, val_size, "search.val_size")
    else:
        rest, held = split_holdout(dataset, val_size, ctx.recipe.seed)
        batch = ctx.train_loader.batch_size
        shuffle = torch.Generator().manual_seed(ctx.recipe.seed)
        train_part = DataLoader(rest, batch_size=batch, shuffle=True, generator=shuffle)
        held_out = DataLoader(held, batch_size=batch)
    result = search_widths(model, ctx.example, cfg.method, target, train_part, held_out, config,
                           out_dir=out / "search", resume=True, task=ctx.task,
                           ignored=layer_keys(cfg.ignored))  # fmt: skip
    result.plan.save(out / "plan.json")
    pruned = apply_search_plan(model, result.plan, ctx.example)
    return pruned, {"method": cfg.method, "target": cfg.target, "evaluated": result.evaluated,
                    "seconds": result.seconds, "plan": result.plan.to_dict()}  # fmt: skip


@stage("quantize")
def quantize(ctx: RunContext, cfg: QuantizeStage, model: nn.Module, out: Path) -> tuple[nn.Module, dict]:
    """Post-training static int8 on ``cfg.runtime`` (ONNX Runtime, OpenVINO/NNCF, PyTorch PT2E), or on the
    fastest of them within ``tolerance_pp`` (``auto``): the stage's model is the int8 artefact."""
    from netsculpt.pipeline.quantize_stage import run_quantize

    return run_quantize(ctx, cfg, model, out)
