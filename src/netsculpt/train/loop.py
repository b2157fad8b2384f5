"""The training loop: seeded, checkpointed every epoch, resumable bit for bit, and safe against NaNs.

One epoch is: train over ``train_loader`` (the learning rate steps per batch), evaluate on
``test_loader``, then save a checkpoint. The checkpoint is written after evaluation and the random
generators are captured at that same moment, so a resumed run replays exactly what the uninterrupted run
would have done next.
"""

from __future__ import annotations

import copy
import itertools
import random
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from torch import Tensor, nn

from netsculpt.errors import CheckpointError, ConfigError, DataError
from netsculpt.fileio import atomic_write, write_json
from netsculpt.progress import progress_bar
from netsculpt.train.checkpoint import (
    CHECKPOINT_NAME,
    capture_rng,
    load_checkpoint,
    load_model_state,
    restore_rng,
    save_checkpoint,
)
from netsculpt.train.config import TrainConfig
from netsculpt.train.losses import CrossEntropy, LossFn
from netsculpt.train.optim import build_optimizer, build_scheduler
from netsculpt.train.result import NonFiniteLossError, TrainResult

EpochCallback = Callable[[dict[str, float]], bool | None]


def evaluate(
    model: nn.Module, loader: Any, *, loss_fn: LossFn | None = None, max_batches: int | None = None
) -> tuple[float, float]:
    """Top-1 accuracy and the sample-weighted mean loss of ``model`` over ``loader`` (or its first batches).

    Runs in eval mode without gradients and puts the model back in the mode it was in.
    """
    loss_fn = loss_fn or CrossEntropy()
    device = _model_device(model)
    was_training = model.training
    model.eval()
    correct, seen, loss_sum = 0, 0, 0.0
    try:
        with torch.no_grad():
            for batch in itertools.islice(loader, max_batches):
                inputs, targets = _unpack(batch, device)
                loss, logits = loss_fn(model, inputs, targets)
                n = int(targets.shape[0])
                correct += _correct(logits, targets)
                loss_sum += float(loss) * n
                seen += n
    finally:
        model.train(was_training)
    if seen == 0:
        raise DataError("evaluate() got a loader that yielded no samples; check the dataset split and limit")
    return correct / seen, loss_sum / seen


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
) -> TrainResult:
    """Train ``model`` in place for ``config.epochs`` epochs and return its history.

    With ``out_dir`` a checkpoint is written after every epoch (``checkpoint.pt``), and at the end
    ``model.safetensors`` and ``history.json``. ``resume=True`` continues from that checkpoint (or
    starts fresh if there is none) and ends with the same weights an uninterrupted run would have.
    ``loss_fn(model, inputs, targets) -> (loss, logits)`` replaces the default cross-entropy (for
    distillation); test loss is always plain cross-entropy so runs with different losses compare.
    ``on_epoch_end(record)`` is called after each epoch's checkpoint; returning True stops training.

    Raises:
        NonFiniteLossError: the loss became NaN/inf; the model was restored to the last good state.
        CheckpointError: the checkpoint in ``out_dir`` is corrupt or was not written by this function.
        ConfigError: ``out_dir`` already has a checkpoint but ``resume`` is False, or the checkpoint's
            config differs from ``config``.
    """
    config.validate()
    ckpt_path = Path(out_dir) / CHECKPOINT_NAME if out_dir is not None else None
    if resume and ckpt_path is None:
        raise ConfigError("resume=True needs out_dir: the folder whose checkpoint.pt should be continued")
    if ckpt_path is not None and ckpt_path.exists() and not resume:
        raise ConfigError(
            f"{str(ckpt_path)!r} already exists; pass resume=True to continue that run, "
            "or choose an empty out_dir to start a new one"
        )
    model.to(device)
    loss_fn = loss_fn or CrossEntropy(config.label_smoothing)
    run = _Run(model, {"train": train_loader, "test": test_loader}, config, loss_fn, torch.device(device))
    run.ckpt_path = ckpt_path

    previous = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        if ckpt_path is not None and ckpt_path.exists():
            run.resume_from(ckpt_path)
        else:
            _seed_everything(config.seed)
        run.epochs(on_epoch_end)
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
    result = TrainResult.from_history(run.history, run.resumed_from)
    if out_dir is not None:
        _write_outputs(Path(out_dir), model, config, result)
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
    ) -> None:
        self.model, self.loaders, self.config = model, loaders, config
        self.loss_fn, self.device = loss_fn, device
        self.steps_per_epoch = _num_batches(loaders["train"])
        self.optimizer = build_optimizer(model, config)
        self.scheduler = build_scheduler(self.optimizer, config, self.steps_per_epoch)
        self.history: list[dict[str, float]] = []
        self.start_epoch = 0
        self.resumed_from: int | None = None
        self.ckpt_path: Path | None = None

    # -- state --------------------------------------------------------------------------------------
    def state(self, epoch: int) -> dict[str, Any]:
        """Everything a checkpoint holds (tensors are live references: copy before keeping in memory)."""
        return {
            "epoch": epoch,
            "steps_per_epoch": self.steps_per_epoch,
            "config": self.config.to_dict(),
            "history": [dict(h) for h in self.history],
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": capture_rng(self.loaders),
        }

    def load_state(self, state: dict[str, Any], source: str) -> None:
        load_model_state(self.model, state["model"], source)
        try:
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
        except (ValueError, KeyError, RuntimeError) as exc:
            raise CheckpointError(f"the optimizer state in {source} does not fit this model: {exc}") from None
        restore_rng(state["rng"], self.loaders)
        self.history = [dict(h) for h in state["history"]]

    def resume_from(self, path: Path) -> None:
        ckpt = load_checkpoint(path)
        _check_compatible(ckpt, self.config, self.steps_per_epoch, path)
        self.load_state(ckpt, repr(str(path)))
        self.start_epoch = self.resumed_from = int(ckpt["epoch"])

    # -- loop ---------------------------------------------------------------------------------------
    def epochs(self, on_epoch_end: EpochCallback | None) -> None:
        total = self.config.epochs
        with progress_bar(transient=False) as bar:
            for epoch in range(self.start_epoch + 1, total + 1):
                snapshot = None
                if self.ckpt_path is None or not self.ckpt_path.exists():
                    snapshot = copy.deepcopy(self.state(epoch - 1))
                task = bar.add_task(f"epoch {epoch}/{total}", total=self.steps_per_epoch, status="")
                start = time.perf_counter()
                try:
                    train_loss, train_acc, lr = self.train_epoch(epoch, partial(bar.update, task, advance=1))
                except _Diverged as diverged:
                    bar.update(task, status="[red]non-finite loss")
                    raise self.rollback(diverged, snapshot) from None
                test_acc, test_loss = evaluate(self.model, self.loaders["test"])
                record = {
                    "epoch": epoch,
                    "train_loss": train_loss,
                    "train_acc": train_acc,
                    "test_loss": test_loss,
                    "test_acc": test_acc,
                    "lr": lr,
                    "seconds": time.perf_counter() - start,
                }
                self.history.append(record)
                bar.update(task, status=f"loss {train_loss:.4f} acc {train_acc:.2%}  test acc {test_acc:.2%}")
                if self.ckpt_path is not None:
                    save_checkpoint(self.ckpt_path, self.state(epoch))
                    write_json(self.ckpt_path.parent / "history.json", self.history)
                if on_epoch_end is not None and _call_rng_neutral(on_epoch_end, dict(record), self.loaders):
                    break

    def train_epoch(self, epoch: int, report: Callable[..., None]) -> tuple[float, float, float]:
        """One pass over the training data; returns (mean loss, accuracy, last learning rate)."""
        model, optimizer, clip = self.model, self.optimizer, self.config.grad_clip
        model.train()
        correct, seen, loss_sum, lr = 0, 0, 0.0, self.optimizer.param_groups[0]["lr"]
        for index, batch in enumerate(self.loaders["train"]):
            inputs, targets = _unpack(batch, self.device)
            optimizer.zero_grad(set_to_none=True)
            loss, logits = self.loss_fn(model, inputs, targets)
            value = float(loss.detach())
            if not np.isfinite(value):
                raise _Diverged(epoch, index, value)
            loss.backward()
            if clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            lr = optimizer.param_groups[0]["lr"]
            optimizer.step()
            self.scheduler.step()
            n = int(targets.shape[0])
            correct += _correct(logits.detach(), targets)
            loss_sum += value * n
            seen += n
            report(status=f"loss {loss_sum / seen:.4f} acc {correct / seen:.2%}")
        if seen == 0:
            raise DataError("the training loader yielded no samples; check the dataset split and limit")
        return loss_sum / seen, correct / seen, lr

    def rollback(self, diverged: _Diverged, snapshot: dict[str, Any] | None) -> NonFiniteLossError:
        """Restore the last good state and build the error that says what happened and what to try."""
        if snapshot is None:
            assert self.ckpt_path is not None
            ckpt = load_checkpoint(self.ckpt_path)
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


def _check_compatible(ckpt: dict[str, Any], config: TrainConfig, steps_per_epoch: int, path: Path) -> None:
    """Refuse to resume a run whose recipe or data changed: the result would match neither run."""
    saved = dict(ckpt["config"])
    current = config.to_dict()
    # epochs may grow: continuing a finished run for longer is a legitimate use of resume.
    diff = sorted(k for k in set(saved) | set(current) if k != "epochs" and saved.get(k) != current.get(k))
    if diff:
        details = ", ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in diff)
        raise ConfigError(
            f"{str(path)!r} was written with a different training config ({details}); resume with the "
            "original config or start a new out_dir"
        )
    saved_steps = ckpt.get("steps_per_epoch")
    if saved_steps is not None and saved_steps != steps_per_epoch:
        raise ConfigError(
            f"the training loader has {steps_per_epoch} batches per epoch but {str(path)!r} was written "
            f"with {saved_steps}; resume with the same dataset and batch size"
        )


def _call_rng_neutral(callback: EpochCallback, record: dict[str, float], loaders: dict[str, Any]) -> bool:
    """Run the user's callback without letting it shift the random streams the next epoch draws from."""
    saved = capture_rng(loaders)
    try:
        return bool(callback(record))
    finally:
        restore_rng(saved, loaders)


def _write_outputs(out_dir: Path, model: nn.Module, config: TrainConfig, result: TrainResult) -> None:
    # clone: safetensors refuses tensors that share storage (tied weights); a copy stores each on its own
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    atomic_write(out_dir / "model.safetensors", lambda p: save_file(tensors, str(p)))
    write_json(out_dir / "history.json", result.history)
    write_json(out_dir / "result.json", {"config": config.to_dict(), **result.to_dict()})


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def _num_batches(loader: Any) -> int:
    try:
        n = len(loader)
    except TypeError:
        raise DataError(
            "the training loader has no length; netsculpt.train needs len(loader) to lay out the "
            "learning-rate schedule (use a map-style dataset or give the sampler a length)"
        ) from None
    if n == 0:
        raise DataError("the training loader is empty; check the dataset split, limit and batch size")
    return n


def _unpack(batch: Any, device: torch.device) -> tuple[Tensor, Tensor]:
    if not isinstance(batch, list | tuple) or len(batch) < 2:
        raise DataError(f"each batch must be (inputs, targets); the loader yielded a {type(batch).__name__}")
    inputs, targets = batch[0], batch[1]
    return inputs.to(device), targets.to(device)


def _correct(logits: Tensor, targets: Tensor) -> int:
    labels = targets.argmax(1) if targets.dim() == 2 else targets
    return int((logits.argmax(1) == labels).sum())


def _model_device(model: nn.Module) -> torch.device:
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        return tensor.device
    return torch.device("cpu")
