"""The training entry point: seeded, checkpointed every epoch, resumable bit for bit, and safe against NaNs.

:func:`train` validates the call, joins a process group under ``torchrun`` (see ``train/ddp.py``), builds
a :class:`~netsculpt.train.run.Run` (state, checkpoints, epoch loop) and writes the outputs. The pieces
live in their own modules: ``run.py`` (epochs, resume, rollback), ``passes.py`` (one pass over the data),
``divergence.py`` (NaN handling), ``display.py`` (progress), ``callbacks.py``, ``outputs.py``.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from netsculpt.checks import materialised
from netsculpt.errors import ConfigError
from netsculpt.train import ddp
from netsculpt.train.act_checkpoint import activation_checkpointing
from netsculpt.train.callbacks import EpochCallback
from netsculpt.train.checkpoint import CHECKPOINT_NAME
from netsculpt.train.config import TrainConfig
from netsculpt.train.early_stop import EarlyStopping
from netsculpt.train.evaluate import evaluate
from netsculpt.train.losses import CrossEntropy, LossFn
from netsculpt.train.outputs import write_outputs
from netsculpt.train.result import TrainResult
from netsculpt.train.run import Run

if TYPE_CHECKING:
    from netsculpt.tasks import Task

__all__ = ["EpochCallback", "evaluate", "train"]


def train(
    model: nn.Module,
    train_loader: Any,
    test_loader: Any,
    config: TrainConfig,
    *,
    out_dir: str | Path | None = None,
    resume: bool = False,
    loss_fn: LossFn | None = None,
    on_epoch_end: EpochCallback | None = None,
    device: str | torch.device = "cpu",
    task: str | Task | None = None,
    val_loader: Any = None,
    early_stopping: EarlyStopping | None = None,
) -> TrainResult:
    """Train ``model`` in place for ``config.epochs`` epochs and return its history.

    With ``out_dir`` a checkpoint is written after every epoch (``checkpoint.pt``), and at the end
    ``model.safetensors`` and ``history.json``. ``resume=True`` continues from that checkpoint (or
    starts fresh if there is none) and ends with the same weights an uninterrupted run would have.
    ``loss_fn(model, inputs, targets) -> (loss, logits)`` replaces the default cross-entropy (for
    distillation); test loss is always plain cross-entropy so runs with different losses compare.
    A loss with a ``learnable`` module (hint adapters) has it trained and checkpointed too, but never
    saved with the model. ``on_epoch_end(record)`` is called after each epoch's checkpoint; returning
    True stops training. ``task`` (a name or :class:`netsculpt.tasks.Task`; default classification) gives
    the batches, the default loss and the test metric: for ``detection`` / ``segmentation`` ``test_acc``
    holds the task's headline metric (mAP@[.5:.95], mIoU), every metric is also recorded as ``test_<name>``,
    and ``train_acc`` / ``test_loss`` are None (a detector's training pass yields losses, not predictions).
    ``val_loader`` is a split held out of the *training* data: scored every epoch as ``val_acc`` /
    ``val_loss``, and the only thing ``early_stopping`` (:class:`EarlyStopping`) reads; the test split is
    reported, never used to decide. Launched by ``torchrun``, every process calls this the same way: it
    joins the process group, shards the data, and only rank 0 writes files or draws progress bars.

    Raises:
        NonFiniteLossError: the loss became NaN/inf; the model was restored to the last good state.
        CheckpointError: the checkpoint in ``out_dir`` is corrupt or was not written by this function.
        ConfigError: ``out_dir`` already has a checkpoint but ``resume`` is False, or the checkpoint's
            config differs from ``config``.
    """
    config.validate()
    materialised(model, "train")  # the optimizer's weight-decay groups and checkpoints need every shape
    if early_stopping is not None:
        early_stopping.validate()
        if val_loader is None:
            raise ConfigError(
                "early_stopping needs val_loader=: a split held out of the training data (never the test "
                "split); netsculpt.search.holdout.split_holdout carves one"
            )
        if val_loader is test_loader:
            raise ConfigError(
                "val_loader is the test loader: early stopping on the split a run reports tunes the result "
                "to its own exam; hold out part of the training data instead"
            )
    dense = _dense_task(task) if task is not None else language_task(train_loader)
    ctx = ddp.init_distributed(device)
    if dense is not None and ctx.distributed and not dense.distributed:
        raise ConfigError(
            f"the {dense.name} task's metric ({dense.metric}) does not add up across data-parallel shards; "
            "train it in one process"
        )
    device = ddp.rank_device(ctx, device)
    ckpt_path = Path(out_dir) / CHECKPOINT_NAME if out_dir is not None else None
    if resume and ckpt_path is None:
        raise ConfigError("resume=True needs out_dir: the folder whose checkpoint.pt should be continued")
    exists = ddp.broadcast_object(ckpt_path is not None and ckpt_path.exists(), ctx)  # rank 0's disk
    if exists and not resume:
        raise ConfigError(
            f"{str(ckpt_path)!r} already exists; pass resume=True to continue that run, "
            "or choose an empty out_dir to start a new one"
        )
    model.to(device)
    loss_fn = loss_fn or (dense.loss if dense is not None else CrossEntropy(config.label_smoothing))
    if callable(getattr(loss_fn, "to", None)):
        loss_fn.to(device)  # type: ignore[attr-defined]
    if ctx.distributed:
        train_loader = ddp.shard_train_loader(train_loader, ctx, config.seed)
        test_loader = ddp.shard_eval_loader(test_loader, ctx)
        if val_loader is not None:
            val_loader = ddp.shard_eval_loader(val_loader, ctx)
    run = Run(model, {"train": train_loader, "test": test_loader}, config, loss_fn, device, ctx)
    run.task = dense
    run.find_bn_scales()  # bn_l1: the scales of prunable BatchNorms, traced on the first training batch
    run.ckpt_path = ckpt_path
    run.val_loader, run.early = val_loader, early_stopping

    previous = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        if exists:
            assert ckpt_path is not None
            run.resume_from(ckpt_path)
        else:
            _seed_everything(config.seed + ctx.rank)  # rank 0 draws what a single process would
        with activation_checkpointing(model, config.checkpoint_activations):
            run.start()
            run.epochs(on_epoch_end)
        run.finish()
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
    result = TrainResult.from_history(run.history, run.resumed_from)
    if early_stopping is not None:
        best = run.best["epoch"] if run.best is not None else early_stopping.best_epoch(run.history)
        result.best_epoch = best
        result.stopped_early = len(run.history) < config.epochs
        if run.best is not None:  # the model holds the best epoch's weights: report their accuracy
            result.final_acc = next(h["test_acc"] for h in run.history if h["epoch"] == run.best["epoch"])
    if out_dir is not None and ctx.is_main:
        write_outputs(Path(out_dir), model, config, result, run.recipe)
    return result


def _dense_task(task: str | Task | None) -> Task | None:
    """The task when it is not classification (which keeps the loop's own, bit-identical code path)."""
    if task is None:
        return None
    from netsculpt.tasks import get_task

    resolved = get_task(task)
    return None if resolved.name == "classification" else resolved


def language_task(loader: Any) -> Task | None:
    """The ``language_modeling`` task when the loader's first batch is token ids (a ``(batch, seq)``
    integer tensor, ``(ids, labels)`` with per-token labels, or a dict with ``input_ids``; see
    ``tasks/language_model.py``), else None (classification). Drawing that batch leaves every random
    stream as it was, so the run is the same."""
    from netsculpt.tasks.language_model import LanguageModeling, token_batch_kind
    from netsculpt.train.checkpoint import capture_rng, restore_rng

    loaders = {"train": loader}
    saved = capture_rng(loaders)
    try:
        batch = _first_batch(loader)
    finally:
        restore_rng(saved, loaders)
    return LanguageModeling() if token_batch_kind(batch) is not None else None


def _first_batch(loader: Any) -> Any:
    """A batch of one built from the dataset's first sample when the loader batches a map-style dataset
    with the default collate (no worker processes start just to look), else the loader's first batch."""
    from torch.utils.data import IterableDataset, default_collate

    dataset = getattr(loader, "dataset", None)
    plain = getattr(loader, "collate_fn", None) is default_collate and getattr(loader, "batch_size", None)
    if plain and dataset is not None and not isinstance(dataset, IterableDataset):
        try:
            return default_collate([dataset[0]]) if len(dataset) else None
        except (TypeError, IndexError, KeyError):
            pass  # a dataset without integer indexing: ask the loader
    return next(iter(loader), None)


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
