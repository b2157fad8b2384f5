"""Recipes with ``task: detection`` or ``task: segmentation``: their data, held-out splits and checks.

A classification recipe reads an image dataset from the data registry; a dense one reads the seeded
``digits_detect`` / ``digits_seg`` canvases (``netsculpt.data.canvases``: training canvases drawn from
the 4,000 training digits only, test canvases from the 1,000 test digits), batched by the task's own
``collate``. Whatever a stage chooses on data (search candidates, early stopping) it chooses on canvases
held out of the *training* canvases; the test canvases are only reported.

What is checked when the recipe is read, before any work: the data suits the task, no stage kind the
dense tasks do not support, and no criterion that needs one class label per image (``hrel``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from netsculpt.errors import ConfigError

DENSE_DATA = {"digits_detect": "detection", "digits_seg": "segmentation"}
DENSE_STAGES = ("prune", "finetune", "distill", "search")
NUM_CLASSES = 11  # background + 10 digits
CANVAS_OPTIONS = ("train_canvases", "test_canvases", "size", "digits", "scale")


def check_dense_recipe(recipe: Any) -> None:
    """Raise ``ValueError`` (pydantic turns it into a recipe error naming the field) for what a dense
    task cannot run; a no-op for classification."""
    from netsculpt.tasks import list_tasks

    if recipe.task not in list_tasks():
        raise ValueError(f"unknown task {recipe.task!r}; tasks are: {', '.join(list_tasks())}")
    data = recipe.data.name
    if recipe.task == "classification":
        if data in DENSE_DATA:
            raise ValueError(f"data {data!r} is {DENSE_DATA[data]} data: add 'task: {DENSE_DATA[data]}'")
        return
    if DENSE_DATA.get(data) != recipe.task:
        wanted = [name for name, task in DENSE_DATA.items() if task == recipe.task]
        raise ValueError(f"task {recipe.task!r} reads data {' or '.join(map(repr, wanted))}, not {data!r}")
    unknown = sorted(set(recipe.data.options) - set(CANVAS_OPTIONS))
    if unknown:
        takes = ", ".join(CANVAS_OPTIONS)
        raise ValueError(f"data.options {unknown} unknown for {data!r}; it takes: {takes}")
    if recipe.data.resize is not None or recipe.data.channels is not None:
        raise ValueError(f"{data!r} canvases are 1-channel squares: set their side with data.options.size")
    if recipe.compare_random:
        raise ValueError(f"compare_random is classification-only for now; remove it for task {recipe.task!r}")
    for i, st in enumerate(recipe.stages):
        if st.kind not in DENSE_STAGES:
            raise ValueError(
                f"stages.{i}: {st.kind!r} is not supported for task {recipe.task!r} yet; dense recipes run "
                f"{', '.join(DENSE_STAGES)}"
            )
        if getattr(st, "mixup", 0):
            raise ValueError(
                f"stages.{i}: mixup mixes two images but not their {recipe.task} targets: remove it"
            )
        if getattr(st, "augment", None):
            raise ValueError(f"stages.{i}: augment shifts images, not their boxes / masks: remove it")
        criterion = getattr(st, "criterion", None)
        if criterion is not None and _needs_image_labels(criterion):
            targets = "boxes" if recipe.task == "detection" else "pixel maps"
            raise ValueError(
                f"stages.{i}: criterion {criterion!r} needs one class label per image, and the "
                f"{recipe.task} task's targets are {targets}; "
                "use taylor or fisher (they differentiate the task's own loss), chip or hrank (no labels), "
                "or a weight criterion (l1, fpgm)"
            )
    train = recipe.baseline.train
    if train is not None and train.augment:
        raise ValueError("baseline.train.augment shifts images, not their boxes / masks: remove it")


def _needs_image_labels(criterion: str) -> bool:
    from netsculpt.importance import get_criterion

    try:
        crit = get_criterion(criterion)
    except Exception:  # an unknown name is reported by the stage itself, with the list of criteria
        return False
    return bool(getattr(crit, "per_image_labels", False))


def canvases(recipe: Any, split: str) -> Dataset:
    from netsculpt.data.canvases import CanvasSpec, DigitsCanvases

    options, limit = recipe.data.options, recipe.data.limit
    spec = CanvasSpec(
        size=int(options.get("size", 128)),
        digits=tuple(options.get("digits", (1, 6))),
        scale=tuple(options.get("scale", (14, 56))),
    )
    n = int(options.get(f"{split}_canvases", 4000 if split == "train" else 1000))
    n = min(n, limit) if limit is not None else n
    kind = "detect" if recipe.task == "detection" else "seg"
    return DigitsCanvases(split, n, task=kind, seed=recipe.seed, spec=spec)


def dense_loaders(recipe: Any, task: Any, batch: int) -> tuple[DataLoader, DataLoader]:
    """Training loader (shuffled by a generator seeded with the recipe's seed) and test loader."""
    train = DataLoader(canvases(recipe, "train"), batch_size=batch, shuffle=True, collate_fn=task.collate,
                       generator=torch.Generator().manual_seed(recipe.seed))  # fmt: skip
    test = DataLoader(canvases(recipe, "test"), batch_size=batch, collate_fn=task.collate)
    return train, test


def split_training(dataset: Dataset, size: int, seed: int, what: str) -> tuple[Subset, Subset]:
    """``(rest, held)``: ``size`` training canvases drawn with ``seed`` for ``what`` to decide on."""
    if size >= len(dataset):
        raise ConfigError(
            f"{what} holds out {size} of the {len(dataset)} training canvases, which leaves none to train "
            "on: hold out fewer"
        )
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed)).tolist()
    return Subset(dataset, sorted(order[size:])), Subset(dataset, sorted(order[:size]))


def held_out_loaders(ctx: Any, size: int, what: str) -> tuple[DataLoader, DataLoader]:
    """Training and held-out loaders over the training canvases, batched by the task."""
    rest, held = split_training(ctx.train_loader.dataset, size, ctx.recipe.seed, what)
    batch, collate = ctx.train_loader.batch_size, ctx.task.collate
    train = DataLoader(rest, batch_size=batch, shuffle=True, collate_fn=collate,
                       generator=torch.Generator().manual_seed(ctx.recipe.seed))  # fmt: skip
    return train, DataLoader(held, batch_size=batch, collate_fn=collate)


METRIC_LABELS = {"map": "mAP@[.5:.95]", "map_50": "mAP@.5", "miou": "mIoU", "pixel_acc": "pixel accuracy"}


def task_record(task: Any) -> dict[str, Any]:
    """What ``results.json`` says about the task: its name, headline metric and the metrics' labels."""
    if task is None:
        return {"name": "classification", "metric": "accuracy", "label": "accuracy"}
    names = ["map", "map_50"] if task.name == "detection" else ["miou", "pixel_acc"]
    return {"name": task.name, "metric": task.metric, "label": METRIC_LABELS.get(task.metric, task.metric),
            "labels": {k: METRIC_LABELS[k] for k in names}}  # fmt: skip
