"""The mutable state of one training call and its epoch loop: checkpoint, resume, roll back.

One epoch is a training pass, a test pass, a history record, then a checkpoint. The checkpoint is
written after evaluation and the random generators are captured at that same moment, so a resumed run
replays exactly what the uninterrupted run would have done next.
"""

from __future__ import annotations

import copy
import time
from functools import cached_property, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from netsculpt import faults
from netsculpt.errors import CheckpointError, ConfigError
from netsculpt.fileio import write_json
from netsculpt.train import ddp
from netsculpt.train.callbacks import EpochCallback, call_rng_neutral
from netsculpt.train.checkpoint import (
    capture_rng,
    check_compatible,
    load_checkpoint,
    load_model_state,
    restore_rng,
    save_checkpoint,
)
from netsculpt.train.config import TrainConfig
from netsculpt.train.data_id import data_fingerprint
from netsculpt.train.display import epoch_bars, epoch_status
from netsculpt.train.divergence import Diverged, nonfinite_error
from netsculpt.train.early_stop import EarlyStopping
from netsculpt.train.evaluate import num_batches
from netsculpt.train.losses import LossFn
from netsculpt.train.optim import build_optimizer, build_scheduler
from netsculpt.train.passes import test_pass, train_pass, val_pass
from netsculpt.train.result import NonFiniteLossError, TrainResult
from netsculpt.train.slimming import bn_scales, first_inputs

if TYPE_CHECKING:
    from netsculpt.tasks import Task


class Run:
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
        self.bn_scales: list[nn.Parameter] = []  # network slimming's L1 term: find_bn_scales()
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
        self.val_loader: Any = None  # held-out training data for early stopping; never the test split
        self.early: EarlyStopping | None = None
        self.best: dict[str, Any] | None = None  # {"epoch", "model"}: the best held-out epoch's weights

    @cached_property
    def data_id(self) -> dict[str, Any] | None:
        """The training data's fingerprint, computed on first use: runs without checkpoints never hash."""
        return data_fingerprint(self.loaders["train"])

    def find_bn_scales(self) -> None:
        """The BatchNorm scales ``bn_l1`` penalises, found by tracing the model on the first training
        batch; drawing that batch leaves every random stream as it was, so the run is the same."""
        if self.config.bn_l1 == 0:
            return
        saved = capture_rng(self.loaders)
        try:
            example = first_inputs(self.loaders["train"], self.device)
            self.bn_scales = bn_scales(self.model, self.config.bn_l1, example)
        finally:
            restore_rng(saved, self.loaders)

    # -- state --------------------------------------------------------------------------------------
    def state(self, epoch: int, *, all_ranks: bool = False) -> dict[str, Any]:
        """Everything a checkpoint holds (tensors are live references: copy before keeping in memory).

        ``all_ranks`` gathers every rank's random state (a collective: all ranks must call it).
        """
        state: dict[str, Any] = {
            "epoch": epoch,
            "steps_per_epoch": self.steps_per_epoch,
            "data": self.data_id,
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
        if callable(getattr(self.loss_fn, "runtime_state", None)):
            state["loss_runtime"] = self.loss_fn.runtime_state()  # type: ignore[attr-defined]
        if self.early is not None:
            state["early_stopping"] = self.early.to_dict()
            if self.best is not None:
                state["best"] = self.best
        if all_ranks and self.ctx.distributed:
            state["rng_ranks"] = ddp.gather_objects(state["rng"], self.ctx)
            if "loss_runtime" in state:  # each rank's loss saw its own shard's batches
                state["loss_runtime_ranks"] = ddp.gather_objects(state["loss_runtime"], self.ctx)
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
        self.load_loss_runtime(state, source)
        try:
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
        except (ValueError, KeyError, RuntimeError) as exc:
            raise CheckpointError(f"the optimizer state in {source} does not fit this model: {exc}") from None
        ranks = state.get("rng_ranks")
        restore_rng(ranks[self.ctx.rank] if ranks else state["rng"], self.loaders)
        self.history = [dict(h) for h in state["history"]]
        best = state.get("best")
        self.best = {"epoch": int(best["epoch"]), "model": _copy_tensors(best["model"])} if best else None

    def load_loss_runtime(self, state: dict[str, Any], source: str) -> None:
        """A loss with counters or running statistics (``runtime_state`` / ``load_runtime_state``, e.g. the
        GPP push loss) gets them back, so the resumed run takes the same steps."""
        load = getattr(self.loss_fn, "load_runtime_state", None)
        if not callable(load):
            return
        ranks = state.get("loss_runtime_ranks")
        saved = ranks[self.ctx.rank] if ranks else state.get("loss_runtime")
        if saved is None:
            raise CheckpointError(
                f"{source} holds no state for the loss's counters and running statistics; resume with the "
                "loss that wrote it or start a new out_dir"
            )
        load(saved)

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
            data=self.data_id,
        )
        saved = ckpt.get("early_stopping")
        current = self.early.to_dict() if self.early is not None else None
        if saved != current:
            raise ConfigError(
                f"{str(path)!r} was written with early stopping {saved!r}, this run asks for {current!r}; "
                "resume with the same setting or start a new out_dir"
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
        with epoch_bars(ctx.is_main) as bar:
            for epoch in range(self.start_epoch + 1, total + 1):
                if self.early is not None and self.early.should_stop(self.history):
                    break  # also on resume: a run that stopped early stays stopped
                snapshot = None
                if self.ckpt_path is None or self.saved_epoch is None:
                    snapshot = copy.deepcopy(self.state(epoch - 1))
                ddp.set_epoch(self.loaders["train"], epoch)
                task = bar.add_task(f"epoch {epoch}/{total}", total=self.steps_per_epoch, status="")
                start = time.perf_counter()
                try:
                    train_loss, train_acc, lr = train_pass(self, epoch, partial(bar.update, task, advance=1))
                except Diverged as diverged:
                    bar.update(task, status="[red]non-finite loss")
                    raise self.rollback(diverged, snapshot) from None
                ddp.broadcast_tensors(self.model, ctx, buffers_only=True)  # rank 0's BN statistics
                test_acc, test_loss, extra = test_pass(self)
                if self.val_loader is not None:
                    extra = {**extra, **val_pass(self)}
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
                self.keep_if_best(epoch)
                bar.update(task, status=epoch_status(train_loss, train_acc, test_acc, self.task))
                if self.ckpt_path is not None:
                    state = self.state(epoch, all_ranks=True)
                    if ctx.is_main:
                        save_checkpoint(self.ckpt_path, state)
                        write_json(self.ckpt_path.parent / "history.json", self.history)
                    self.saved_epoch = epoch
                    faults.point("train:epoch")
                if on_epoch_end is not None:
                    stop = call_rng_neutral(on_epoch_end, dict(record), self.loaders)
                    if ddp.broadcast_object(stop, ctx):  # rank 0 decides, so no rank is left waiting
                        break

    def keep_if_best(self, epoch: int) -> None:
        """Early stopping with ``restore_best``: a copy of the weights whenever held-out accuracy peaks."""
        if self.early is None or not self.early.restore_best or self.early.best_epoch(self.history) != epoch:
            return
        self.best = {"epoch": epoch, "model": _copy_tensors(self.model.state_dict())}

    def finish(self) -> None:
        """Put the best held-out epoch's weights back (early stopping with ``restore_best``)."""
        if self.best is not None and self.history and self.best["epoch"] != self.history[-1]["epoch"]:
            source = f"the best held-out epoch ({self.best['epoch']})"
            load_model_state(self.model, self.best["model"], source)

    def rollback(self, diverged: Diverged, snapshot: dict[str, Any] | None) -> NonFiniteLossError:
        """Restore the last good state and build the error that says what happened and what to try."""
        if snapshot is None:
            assert self.ckpt_path is not None
            ckpt = self.read_checkpoint(self.ckpt_path)
            where = f"the last good checkpoint {str(self.ckpt_path)!r} (end of epoch {ckpt['epoch']})"
            self.load_state(ckpt, repr(str(self.ckpt_path)))
        else:
            self.load_state(snapshot, "the start-of-epoch snapshot")
            where = f"its weights at the start of epoch {diverged.epoch}"
        result = TrainResult.from_history(self.history, self.resumed_from)
        return nonfinite_error(diverged, where, self.steps_per_epoch, self.config, result)


def _copy_tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in state.items()}
