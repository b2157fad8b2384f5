"""Recipes with ``task: detection`` or ``task: segmentation``: their data, held-out splits and checks.

A classification recipe reads an image dataset from the data registry; a dense one reads the seeded
``digits_detect`` / ``digits_seg`` canvases (``netsculpt.data.canvases``: training canvases drawn from
the 4,000 training digits only, test canvases from the 1,000 test digits) or your own files
(``netsculpt.pipeline.own_data``: COCO JSON or a YOLO dataset YAML for detection, mask folders,
Cityscapes or ADE20K for segmentation), batched by the task's own ``collate``. Whatever a stage chooses
on data (search candidates, early stopping) it chooses on samples held out of the *training* split; the
test split is only reported.

What is checked when the recipe is read, before any work: the data suits the task, no stage kind the
dense tasks do not support, no criterion that needs one class label per image (``hrel``), and neither
``compare_random`` nor ``outputs.explain``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from netsculpt.data.flip import HorizontalFlip
from netsculpt.errors import ConfigError
from netsculpt.pipeline.own_data import OPTIONS, check_own_options, own_classes, own_dataset, own_shape
from netsculpt.tasks.metrics import METRIC_LABELS

DENSE_DATA = {
    "digits_detect": "detection",
    "digits_seg": "segmentation",
    "coco": "detection",
    "yolo": "detection",
    "masks": "segmentation",
    "cityscapes": "segmentation",
    "ade20k": "segmentation",
}
DENSE_STAGES = ("prune", "finetune", "distill", "search")
# int8 takes tensor inputs and scores candidates by the task's metric: a segmenter's image batch is one; a
# detector's list of images is not, but its backbone's batched tensor is (netsculpt.weights.int8_detector)
TASK_STAGES = {"segmentation": ("quantize",), "detection": ("quantize",)}
NUM_CLASSES = 11  # background + 10 digits
CANVAS_OPTIONS = ("train_canvases", "test_canvases", "size", "digits", "scale")


def check_dense_recipe(recipe: Any) -> None:
    """Raise ``ValueError`` (pydantic turns it into a recipe error naming the field) for what a dense
    task cannot run; a no-op for classification."""
    if check_task_data(recipe.task, recipe.data):
        return
    if recipe.compare_random:
        raise ValueError(f"compare_random is classification-only for now; remove it for task {recipe.task!r}")
    if recipe.outputs.explain.enabled:  # its maps explain one class score per image: a classifier's
        raise ValueError(
            f"outputs.explain draws maps for classification runs only (task: {recipe.task}); remove it or "
            "set outputs.explain: false"
        )
    stages = (*DENSE_STAGES, *TASK_STAGES.get(recipe.task, ()))
    for i, st in enumerate(recipe.stages):
        if st.kind not in stages:
            raise ValueError(
                f"stages.{i}: {st.kind!r} is not supported for task {recipe.task!r} yet; {recipe.task} "
                f"recipes run {', '.join(stages)}"
            )
        if getattr(st, "mixup", 0):
            raise ValueError(
                f"stages.{i}: mixup mixes two images but not their {recipe.task} targets: remove it"
            )
        if getattr(st, "augment", None):
            raise ValueError(f"stages.{i}: augment shifts images, not their boxes / masks: remove it")
        check_task_criterion(recipe.task, getattr(st, "criterion", None), f"stages.{i}: ")
    train = recipe.baseline.train
    if train is not None and train.augment:
        raise ValueError("baseline.train.augment shifts images, not their boxes / masks: remove it")


def check_task_data(task: str, data: Any) -> bool:
    """Raise ``ValueError`` when ``data`` (a recipe's ``data`` section) does not suit ``task``; True for
    classification (nothing more to check). Recipes and the CLI's ``--task`` both ask this."""
    from netsculpt.tasks import list_tasks

    if task not in list_tasks():
        raise ValueError(f"unknown task {task!r}; tasks are: {', '.join(list_tasks())}")
    name = data.name
    if task == "classification":
        if name in DENSE_DATA:
            raise ValueError(f"data {name!r} is {DENSE_DATA[name]} data: add 'task: {DENSE_DATA[name]}'")
        return True
    if DENSE_DATA.get(name) != task:
        wanted = [n for n, t in DENSE_DATA.items() if t == task]
        if not wanted:  # language_modeling: token batches come from the Python API (docs/criteria.md)
            raise ValueError(
                f"task {task!r} has no recipe or CLI data yet: run it from Python with loaders of token ids "
                "(netsculpt.data.text.text_loaders; docs/criteria.md 'Language models')"
            )
        names = ", ".join(map(repr, wanted[:-1])) + f" or {wanted[-1]!r}"
        raise ValueError(f"task {task!r} reads data {names}, not {name!r}")
    accepted = OPTIONS.get(name, CANVAS_OPTIONS)
    if "flip" in data.options and name not in OPTIONS:
        raise ValueError(
            f"data.options.flip mirrors training images, and a mirrored digit is another shape: {name!r} "
            "canvases are never flipped; remove flip (it is for your own files: coco, yolo, masks, ...)"
        )
    unknown = sorted(set(data.options) - set(accepted))
    if unknown:
        raise ValueError(f"data.options {unknown} unknown for {name!r}; it takes: {', '.join(accepted)}")
    if name in OPTIONS:
        check_own_options(name, data.options)
    else:
        _check_canvas_options(data.options)
    if data.resize is not None or data.channels is not None:
        raise ValueError(
            f"{name!r}: set the example input's side with data.options.size (and channels, for own files)"
        )
    return False


def _check_canvas_options(options: dict[str, Any]) -> None:
    """``digits`` and ``scale`` are [low, high] pairs, ``scale``'s high at most the canvas ``size``: a
    bare number or a string had failed inside the canvas builder (``'int' object is not iterable``)."""
    size = options.get("size", 128)
    if not isinstance(size, int) or size < 8:
        raise ValueError(f"data.options.size must be an integer >= 8 (the canvas side), got {size!r}")
    for key, default, low_min in (("digits", (1, 6), 1), ("scale", (14, 56), 4)):
        pair = options.get(key, default)
        ok = isinstance(pair, list | tuple) and len(pair) == 2 and all(isinstance(v, int) for v in pair)
        if not ok or not low_min <= pair[0] <= pair[1]:
            raise ValueError(
                f"data.options.{key} must be [low, high] integers with {low_min} <= low <= high, got "
                f"{pair!r} (CLI: --data-option {key}=[{default[0]},{default[1]}])"
            )
    scale = options.get("scale", (14, 56))
    if scale[1] > size:
        raise ValueError(
            f"data.options.scale's high {scale[1]} is larger than the canvas size {size}: digits must fit; "
            f"set scale to at most [{max(4, size // 9)},{size * 7 // 16}] (CLI: --data-option scale=[lo,hi])"
        )


def check_task_criterion(task: str, criterion: str | None, where: str = "") -> None:
    """Raise ``ValueError`` for a criterion that needs one class label per image on a dense task."""
    if task == "classification" or criterion is None or not _needs_image_labels(criterion):
        return
    targets = "boxes" if task == "detection" else "pixel maps"
    raise ValueError(
        f"{where}criterion {criterion!r} needs one class label per image, and the "
        f"{task} task's targets are {targets}; "
        "use taylor or fisher (they differentiate the task's own loss), chip or hrank (no labels), "
        "or a weight criterion (l1, fpgm)"
    )


def _needs_image_labels(criterion: str) -> bool:
    from netsculpt.importance import get_criterion

    try:
        crit = get_criterion(criterion)
    except Exception:  # an unknown name is reported by the stage itself, with the list of criteria
        return False
    return bool(getattr(crit, "per_image_labels", False))


def example_shape(recipe: Any) -> tuple[int, int, int, int]:
    """The example input a dense recipe traces and measures with: one ``size`` x ``size`` image."""
    if recipe.data.name in OPTIONS:
        return own_shape(recipe.data.name, recipe.data.options)
    return (1, 1, int(recipe.data.options.get("size", 128)), int(recipe.data.options.get("size", 128)))


def dense_dataset(recipe: Any, split: str) -> Dataset:
    """One split of a dense recipe's data (``data.limit`` keeps its first samples)."""
    return own_dataset(recipe, split) if recipe.data.name in OPTIONS else canvases(recipe, split)


def data_classes(recipe: Any) -> int | None:
    """The classes of your own files (background included); None for the digits canvases."""
    return own_classes(recipe) if recipe.data.name in OPTIONS else None


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
    shuffle = torch.Generator().manual_seed(recipe.seed)
    dataset = dense_dataset(recipe, "train")
    if recipe.data.options.get("flip", 0) > 0:  # own files only (check_task_data)
        from netsculpt.data.flip import flip_idx_of

        dataset = HorizontalFlip(dataset, recipe.data.options["flip"], flip_idx_of(dataset), recipe.seed)
    train = DataLoader(dataset, batch_size=batch, shuffle=True, collate_fn=task.collate,
                       generator=shuffle)  # fmt: skip
    test = DataLoader(dense_dataset(recipe, "test"), batch_size=batch, collate_fn=task.collate)
    return train, test


def split_training(dataset: Dataset, size: int, seed: int, what: str) -> tuple[Subset, Subset]:
    """``(rest, held)``: ``size`` training canvases drawn with ``seed`` for ``what`` to decide on; the
    held-out ones are never flipped (``data.options.flip``), so decisions see the images as they are."""
    if size >= len(dataset):
        raise ConfigError(
            f"{what} holds out {size} of the {len(dataset)} training canvases, which leaves none to train "
            "on: hold out fewer"
        )
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed)).tolist()
    plain = dataset.dataset if isinstance(dataset, HorizontalFlip) else dataset
    return Subset(dataset, sorted(order[size:])), Subset(plain, sorted(order[:size]))


def held_out_loaders(ctx: Any, size: int, what: str) -> tuple[DataLoader, DataLoader]:
    """Training and held-out loaders over the training canvases, batched by the task."""
    return held_out_split(ctx.train_loader, ctx.task, size, ctx.recipe.seed, what)


def held_out_split(
    loader: DataLoader, task: Any, size: int, seed: int, what: str
) -> tuple[DataLoader, DataLoader]:
    """``loader``'s training canvases split into a shuffled training loader and ``size`` held-out ones."""
    rest, held = split_training(loader.dataset, size, seed, what)
    batch, collate = loader.batch_size, task.collate
    train = DataLoader(rest, batch_size=batch, shuffle=True, collate_fn=collate,
                       generator=torch.Generator().manual_seed(seed))  # fmt: skip
    return train, DataLoader(held, batch_size=batch, collate_fn=collate)


def task_record(task: Any) -> dict[str, Any]:
    """What ``results.json`` says about the task: its name, headline metric and the metrics' labels."""
    if task is None:
        return {"name": "classification", "metric": "accuracy", "label": "accuracy"}
    names = ["map", "map_50", "kp_map", "kp_map_50"] if task.name == "detection" else ["miou", "pixel_acc"]
    return {"name": task.name, "metric": task.metric, "label": METRIC_LABELS.get(task.metric, task.metric),
            "labels": {k: METRIC_LABELS[k] for k in names}}  # fmt: skip


def check_distill_heads(recipe: Any, task: Any, model: nn.Module) -> None:
    """A distill stage with a soft term (alpha > 0) on a detector matches its head's outputs: refuse a
    model without that head (Faster / Mask R-CNN) before any stage trains, not when the distill stage
    starts after the baseline and the pruning have run."""
    head_module = getattr(task, "head_module", None)
    if head_module is None:
        return
    for i, stage in enumerate(recipe.stages):
        if stage.kind == "distill" and stage.alpha > 0:
            try:
                head_module(model)
            except ConfigError as exc:
                raise ConfigError(f"stages.{i} (distill, alpha {stage.alpha:g}): {exc}") from None
            return


def build_on_meta(recipe: Any, ctx: Any) -> nn.Module | None:
    """The recipe's model built on the meta device (no memory, no weights), for checks before the
    baseline stage; None when the builder needs real values or the baseline is a checkpoint."""
    if recipe.baseline.checkpoint is not None:
        return None
    from netsculpt.models import create_model

    m = recipe.model
    try:
        with torch.device("meta"):
            return create_model(m.name, num_classes=ctx.num_classes, in_channels=ctx.in_channels, **m.options)
    except Exception:  # a builder computing with tensor values: checked after the baseline instead
        return None
