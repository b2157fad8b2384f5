"""The data, example input and task a recipe's stages share, built once per run (classification or dense)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from netsculpt.pipeline.recipe import Recipe
from netsculpt.pipeline.stages import RunContext


def build_context(recipe: Recipe, run_dir: Path) -> RunContext:
    from netsculpt.data import DataSource

    if recipe.task != "classification":
        return dense_context(recipe, run_dir)
    d = recipe.data
    source = DataSource(d.name, d.root, d.resize, d.channels, d.limit, dict(d.options))
    info = source.info()
    batch = d.batch_size or 64
    if recipe.baseline.train is not None:
        from netsculpt.train import TrainConfig

        batch = d.batch_size or TrainConfig.preset(recipe.baseline.train.preset).batch_size

    def make_train_loader(augment: bool, shift: int | None) -> Any:
        return source.loaders(batch, seed=recipe.seed, augment=augment, shift=shift)

    # Calibration, search, clustering and quantization read unaugmented batches; a training stage asks
    # RunContext.train_loader_for(config) for its own augmentation.
    train_loader, test_loader = make_train_loader(False, None)
    shape = (1, info.in_channels, *info.image_size)
    example = torch.randn(shape, generator=torch.Generator().manual_seed(recipe.seed))
    classes = recipe.model.num_classes or info.num_classes
    channels = recipe.model.in_channels or info.in_channels
    return RunContext(
        recipe,
        run_dir,
        example,
        train_loader,
        test_loader,
        classes,
        channels,
        make_train_loader=lambda augment, shift: make_train_loader(augment, shift)[0],
        make_loaders=make_train_loader,
    )


def dense_context(recipe: Recipe, run_dir: Path) -> RunContext:
    """Detection / segmentation: the digits canvases, batched by the task (netsculpt.pipeline.dense)."""
    from netsculpt.pipeline.dense import NUM_CLASSES, data_classes, dense_loaders, example_shape
    from netsculpt.pipeline.own_data import task_options
    from netsculpt.tasks import get_task

    classes = recipe.model.num_classes or data_classes(recipe) or NUM_CLASSES
    task = get_task(recipe.task, num_classes=classes, **task_options(recipe))
    batch = recipe.data.batch_size or 16
    train_loader, test_loader = dense_loaders(recipe, task, batch)
    shape = example_shape(recipe)
    example = torch.rand(shape, generator=torch.Generator().manual_seed(recipe.seed))
    channels = recipe.model.in_channels or shape[1]
    fresh = lambda augment, shift: dense_loaders(recipe, task, batch)[0]  # noqa: E731  (never augmented)
    ctx = RunContext(recipe, run_dir, example, train_loader, test_loader, classes, channels,
                     make_train_loader=fresh)  # fmt: skip
    ctx.task = task
    return ctx
