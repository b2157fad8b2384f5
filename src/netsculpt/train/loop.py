"""The training loop: seeded, checkpointed every epoch, resumable bit for bit, and safe against NaNs.

One epoch is: train over ``train_loader`` (the learning rate steps per batch), evaluate on
``test_loader``, then save a checkpoint. The checkpoint is written after evaluation and the random
generators are captured at that same moment, so a resumed run replays exactly what the uninterrupted run
would have done next. Under ``torchrun`` the same call trains data-parallel (see ``train/ddp.py``).
"""

from __future__ import annotations

import contextlib
import copy
import random
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from netsculpt import faults
from netsculpt.errors import CheckpointError, ConfigError, DataError
from netsculpt.fileio import atomic_write, write_json
from netsculpt.progress import progress_bar
from netsculpt.train import ddp
from netsculpt.train.checkpoint import (
    CHECKPOINT_NAME,
    capture_rng,
    check_compatible,
    load_checkpoint,
    load_model_state,
    restore_rng,
    save_checkpoint,
)
from netsculpt.train.config import TrainConfig
from netsculpt.train.evaluate import count_correct, evaluate, evaluate_sums, num_batches, unpack
from netsculpt.train.losses import CrossEntropy, LossFn
from netsculpt.train.optim import build_optimizer, build_scheduler
from netsculpt.train.result import NonFiniteLossError, TrainResult

if TYPE_CHECKING:
    from netsculpt.tasks import Task

__all__ = ["EpochCallback", "evaluate", "train"]

EpochCallback = Callable[[dict[str, float]], bool | None]


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
    Launched by ``torchrun``, every process calls this the same way: it joins the
    process group, shards the data, and only rank 0 writes files or draws progress bars.

    Raises:
        NonFiniteLossError: the loss became NaN/inf; the model was restored to the last good state.
        CheckpointError: the checkpoint in ``out_dir`` is corrupt or was not written by this function.
        ConfigError: ``out_dir`` already has a checkpoint but ``resume`` is False, or the checkpoint's
            config differs from ``config``.
    """
    config.validate()
    dense = _dense_task(task)
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
    run = _Run(model, {"train": train_loader, "test": test_loader}, config, loss_fn, device, ctx)
    run.task = dense
    run.ckpt_path = ckpt_path

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
        run.start()
        run.epochs(on_epoch_end)
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
    result = TrainResult.from_history(run.history, run.resumed_from)
    if out_dir is not None and ctx.is_main:
        _write_outputs(Path(out_dir), model, config, result, run.recipe)
    return result


class _Run:
    """The mutable state of one training call: model, optimizer, scheduler, history."""

    def __init__(
        self,
        model: nn.Module,
        loaders: dict[str, Any],
        config: TrainConfig,
        loss_fn: LossFn,
        device: torch.device,
        ctx: ddp.DistContext,
    ) -> None:
        self.model, self.loaders, self.config = model, loaders, config
        self.loss_fn, self.device, self.ctx = loss_fn, device, ctx
        learnable = getattr(loss_fn, "learnable", None)
        self.extra: nn.Module | None = learnable if isinstance(learnable, nn.Module) else None
        self.extra_params = list(self.extra.parameters()) if self.extra is not None else []
        self.params = [*model.parameters(), *self.extra_params]
        recipe = getattr(loss_fn, "recipe", None)
        self.recipe: dict[str, Any] | None = recipe() if callable(recipe) else None
        self.steps_per_epoch = num_batches(loaders["train"])
        trainable = nn.ModuleList([model, self.extra]) if self.extra_params else model
        self.optimizer = build_optimizer(trainable, config)
        self.scheduler = build_scheduler(self.optimizer, config, self.steps_per_epoch)
        self.forward_model: nn.Module = model  # the DDP wrapper once start() runs distributed
        self.history: list[dict[str, float]] = []
        self.start_epoch = 0
        self.resumed_from: int | None = None
        self.saved_epoch: int | None = None
        self.ckpt_path: Path | None = None
        self.task: Task | None = None  # a non-classification task; None keeps the classification path

    # -- state --------------------------------------------------------------------------------------
    def state(self, epoch: int, *, all_ranks: bool = False) -> dict[str, Any]:
        """Everything a checkpoint holds (tensors are live references: copy before keeping in memory).

        ``all_ranks`` gathers every rank's random state (a collective: all ranks must call it).
        """
        state: dict[str, Any] = {
            "epoch": epoch,
            "steps_per_epoch": self.steps_per_epoch,
            "world_size": self.ctx.world_size,
            "config": self.config.to_dict(),
            "history": [dict(h) for h in self.history],
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": capture_rng(self.loaders),
        }
        if self.extra is not None:
            state["loss_state"] = self.extra.state_dict()
        if self.recipe is not None:
            state["loss"] = self.recipe
        if all_ranks and self.ctx.distributed:
            state["rng_ranks"] = ddp.gather_objects(state["rng"], self.ctx)
        return state

    def load_state(self, state: dict[str, Any], source: str) -> None:
        load_model_state(self.model, state["model"], source)
        if self.extra is not None:
            if "loss_state" not in state:
                raise CheckpointError(
                    f"{source} holds no state for the loss's learnable parameters (hint adapters); "
                    "resume with the loss that wrote it or start a new out_dir"
                )
            load_model_state(self.extra, state["loss_state"], source)
        try:
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
        except (ValueError, KeyError, RuntimeError) as exc:
            raise CheckpointError(f"the optimizer state in {source} does not fit this model: {exc}") from None
        ranks = state.get("rng_ranks")
        restore_rng(ranks[self.ctx.rank] if ranks else state["rng"], self.loaders)
        self.history = [dict(h) for h in state["history"]]

    def read_checkpoint(self, path: Path) -> dict[str, Any]:
        """Rank 0 reads the file and sends it to the others: no shared filesystem is needed."""
        if not self.ctx.distributed:
            return load_checkpoint(path)
        payload: tuple[str, Any] | None = None
        if self.ctx.is_main:
            try:
                payload = ("ok", load_checkpoint(path))
            except CheckpointError as exc:
                payload = ("error", str(exc))
        kind, value = ddp.broadcast_object(payload, self.ctx)
        if kind == "error":
            raise CheckpointError(value)
        return value

    def resume_from(self, path: Path) -> None:
        ckpt = self.read_checkpoint(path)
        check_compatible(
            ckpt,
            self.config,
            self.steps_per_epoch,
            path,
            loss_recipe=self.recipe,
            world_size=self.ctx.world_size,
        )
        self.load_state(ckpt, repr(str(path)))
        self.start_epoch = self.resumed_from = self.saved_epoch = int(ckpt["epoch"])

    def start(self) -> None:
        """Distributed: rank 0's loss parameters everywhere, and the model behind DDP."""
        if self.ctx.distributed:
            if self.extra is not None:
                ddp.broadcast_tensors(self.extra, self.ctx)
            self.forward_model = ddp.wrap_model(self.model, self.ctx, self.device)

    # -- loop ---------------------------------------------------------------------------------------
    def epochs(self, on_epoch_end: EpochCallback | None) -> None:
        total, ctx = self.config.epochs, self.ctx
        bars = progress_bar(transient=False) if ctx.is_main else contextlib.nullcontext(_NoBar())
        with bars as bar:
            for epoch in range(self.start_epoch + 1, total + 1):
                snapshot = None
                if self.ckpt_path is None or self.saved_epoch is None:
                    snapshot = copy.deepcopy(self.state(epoch - 1))
                ddp.set_epoch(self.loaders["train"], epoch)
                task = bar.add_task(f"epoch {epoch}/{total}", total=self.steps_per_epoch, status="")
                start = time.perf_counter()
                try:
                    train_loss, train_acc, lr = self.train_epoch(epoch, partial(bar.update, task, advance=1))
                except _Diverged as diverged:
                    bar.update(task, status="[red]non-finite loss")
                    raise self.rollback(diverged, snapshot) from None
                ddp.broadcast_tensors(self.model, ctx, buffers_only=True)  # rank 0's BN statistics
                test_acc, test_loss, extra = self.test()
                record: dict[str, Any] = {
                    "epoch": epoch,
                    "train_loss": train_loss,
                    "train_acc": train_acc,
                    "test_loss": test_loss,
                    "test_acc": test_acc,
                    "lr": lr,
                    "seconds": time.perf_counter() - start,
                    **extra,
                }
                self.history.append(record)
                bar.update(task, status=_status(train_loss, train_acc, test_acc, self.task))
                if self.ckpt_path is not None:
                    state = self.state(epoch, all_ranks=True)
                    if ctx.is_main:
                        save_checkpoint(self.ckpt_path, state)
                        write_json(self.ckpt_path.parent / "history.json", self.history)
                    self.saved_epoch = epoch
                    faults.point("train:epoch")
                if on_epoch_end is not None:
                    stop = _call_rng_neutral(on_epoch_end, dict(record), self.loaders)
                    if ddp.broadcast_object(stop, ctx):  # rank 0 decides, so no rank is left waiting
                        break

    def train_epoch(self, epoch: int, report: Callable[..., None]) -> tuple[float, float | None, float]:
        """One pass over the training data; returns (mean loss, accuracy or None, last learning rate)."""
        model, optimizer, clip, ctx = self.forward_model, self.optimizer, self.config.grad_clip, self.ctx
        model.train()
        if self.extra is not None:
            self.extra.train()
        correct, seen, loss_sum, lr = 0, 0, 0.0, self.optimizer.param_groups[0]["lr"]
        for index, batch in enumerate(self.loaders["train"]):
            inputs, targets = self.unpack(batch)
            optimizer.zero_grad(set_to_none=True)
            loss, logits = self.loss_fn(model, inputs, targets)
            value = float(loss.detach())
            # every rank must agree to stop, or the others would wait forever in the gradient all-reduce
            checked = ddp.all_reduce_sum([value], ctx, self.device)[0] if ctx.distributed else value
            if not np.isfinite(checked):
                raise _Diverged(epoch, index, checked)
            loss.backward()
            ddp.average_gradients(self.extra_params, ctx)
            if clip is not None:
                torch.nn.utils.clip_grad_norm_(self.params, clip)
            lr = optimizer.param_groups[0]["lr"]
            optimizer.step()
            self.scheduler.step()
            faults.point("train:batch")
            if self.task is not None:
                n = self.task.batch_size(inputs, targets)
            else:
                n = int(targets.shape[0])
                correct += count_correct(logits.detach(), targets)
            loss_sum += value * n
            seen += n
            acc = "" if self.task is not None else f" acc {correct / seen:.2%}"
            report(status=f"loss {loss_sum / seen:.4f}{acc}")
        loss_sum, correct, seen = ddp.all_reduce_sum([loss_sum, correct, seen], ctx, self.device)
        if seen == 0:
            raise DataError("the training loader yielded no samples; check the dataset split and limit")
        return loss_sum / seen, (correct / seen if self.task is None else None), lr

    def unpack(self, batch: Any) -> tuple[Any, Any]:
        return (
            self.task.to_device(batch, self.device) if self.task is not None else unpack(batch, self.device)
        )

    def test(self) -> tuple[float, float | None, dict[str, float]]:
        """Accuracy and cross-entropy on the test set (each rank scores its shard; the sums are exact),
        or a dense task's headline metric, no loss, and all its metrics as ``test_<name>``."""
        if self.task is not None:
            metrics = self.task.evaluate(self.model, self.loaders["test"])
            return metrics[self.task.metric], None, {f"test_{k}": v for k, v in metrics.items()}
        sums = evaluate_sums(self.model, self.loaders["test"])
        correct, seen, loss_sum = ddp.all_reduce_sum(list(sums), self.ctx, self.device)
        if seen == 0:
            raise DataError(
                "evaluate() got a loader that yielded no samples; check the dataset split and limit"
            )
        return correct / seen, loss_sum / seen, {}

    def rollback(self, diverged: _Diverged, snapshot: dict[str, Any] | None) -> NonFiniteLossError:
        """Restore the last good state and build the error that says what happened and what to try."""
        if snapshot is None:
            assert self.ckpt_path is not None
            ckpt = self.read_checkpoint(self.ckpt_path)
            where = f"the last good checkpoint {str(self.ckpt_path)!r} (end of epoch {ckpt['epoch']})"
            self.load_state(ckpt, repr(str(self.ckpt_path)))
        else:
            self.load_state(snapshot, "the start-of-epoch snapshot")
            where = f"its weights at the start of epoch {diverged.epoch}"
        message = (
            f"training stopped: the loss became {diverged.value} at epoch {diverged.epoch}, batch "
            f"{diverged.batch + 1}/{self.steps_per_epoch}. The model was restored to {where}. Try a lower "
            f"learning rate (lr={self.config.lr}), set grad_clip, or check the data and loss for NaN/inf."
        )
        return NonFiniteLossError(message, TrainResult.from_history(self.history, self.resumed_from))


class _Diverged(Exception):
    def __init__(self, epoch: int, batch: int, value: float) -> None:
        super().__init__(f"non-finite loss {value} at epoch {epoch}, batch {batch}")
        self.epoch, self.batch, self.value = epoch, batch, value


class _NoBar:
    """What ranks other than 0 get instead of a progress bar: logging is rank 0's job."""

    def add_task(self, *args: Any, **kwargs: Any) -> int:
        return 0

    def update(self, *args: Any, **kwargs: Any) -> None:
        return None


def _call_rng_neutral(callback: EpochCallback, record: dict[str, float], loaders: dict[str, Any]) -> bool:
    """Run the user's callback without letting it shift the random streams the next epoch draws from."""
    saved = capture_rng(loaders)
    try:
        return bool(callback(record))
    finally:
        restore_rng(saved, loaders)


def _write_outputs(
    out_dir: Path, model: nn.Module, config: TrainConfig, result: TrainResult, loss: dict[str, Any] | None
) -> None:
    # clone: safetensors refuses tensors that share storage (tied weights); a copy stores each on its own
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    atomic_write(out_dir / "model.safetensors", lambda p: save_file(tensors, str(p)))
    write_json(out_dir / "history.json", result.history)
    extra = {"loss": loss} if loss is not None else {}
    write_json(out_dir / "result.json", {"config": config.to_dict(), **extra, **result.to_dict()})


def _dense_task(task: str | Task | None) -> Task | None:
    """The task when it is not classification (which keeps the loop's own, bit-identical code path)."""
    if task is None:
        return None
    from netsculpt.tasks import get_task

    resolved = get_task(task)
    return None if resolved.name == "classification" else resolved


def _status(train_loss: float, train_acc: float | None, test_metric: float, task: Task | None) -> str:
    if task is None:
        return f"loss {train_loss:.4f} acc {train_acc:.2%}  test acc {test_metric:.2%}"
    return f"loss {train_loss:.4f}  test {task.metric} {test_metric:.4f}"


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
