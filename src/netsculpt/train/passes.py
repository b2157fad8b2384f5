"""One pass over the data: a training epoch (forward, backward, step per batch) and a test pass.

Kept lean on purpose: per batch there is one host sync (the loss value, which the NaN check needs anyway),
no extra copies, and the progress bar only formats a short string (benchmarks/train_speed.py holds the
whole loop to <= 1.3x a bare PyTorch loop).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from netsculpt import faults
from netsculpt.errors import DataError
from netsculpt.train import ddp
from netsculpt.train.divergence import Diverged
from netsculpt.train.evaluate import count_correct, evaluate_sums, unpack
from netsculpt.train.slimming import add_bn_l1_

if TYPE_CHECKING:
    from netsculpt.train.run import Run


def train_pass(run: Run, epoch: int, report: Callable[..., None]) -> tuple[float, float | None, float]:
    """One pass over the training data; returns (mean loss, accuracy or None, last learning rate)."""
    model, optimizer, clip, ctx = run.forward_model, run.optimizer, run.config.grad_clip, run.ctx
    model.train()
    if run.extra is not None:
        run.extra.train()
    correct, seen, loss_sum, lr = 0, 0, 0.0, optimizer.param_groups[0]["lr"]
    for index, batch in enumerate(run.loaders["train"]):
        inputs, targets = to_device(run, batch)
        optimizer.zero_grad(set_to_none=True)
        loss, logits = run.loss_fn(model, inputs, targets)
        value = float(loss.detach())
        # every rank must agree to stop, or the others would wait forever in the gradient all-reduce
        checked = ddp.all_reduce_sum([value], ctx, run.device)[0] if ctx.distributed else value
        if not np.isfinite(checked):
            raise Diverged(epoch, index, checked)
        loss.backward()
        ddp.average_gradients(run.extra_params, ctx)
        if run.bn_scales:  # after the all-reduce: sign(gamma) is the same on every rank
            add_bn_l1_(run.bn_scales, run.config.bn_l1)
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(run.params, clip)
        lr = optimizer.param_groups[0]["lr"]
        optimizer.step()
        run.scheduler.step()
        faults.point("train:batch")
        if run.task is not None:
            n = run.task.batch_size(inputs, targets)
        else:
            n = int(targets.shape[0])
            correct += count_correct(logits.detach(), targets)
        loss_sum += value * n
        seen += n
        acc = "" if run.task is not None else f" acc {correct / seen:.2%}"
        report(status=f"loss {loss_sum / seen:.4f}{acc}")
    loss_sum, correct, seen = ddp.all_reduce_sum([loss_sum, correct, seen], ctx, run.device)
    if seen == 0:
        raise DataError("the training loader yielded no samples; check the dataset split and limit")
    return loss_sum / seen, (correct / seen if run.task is None else None), lr


def to_device(run: Run, batch: Any) -> tuple[Any, Any]:
    return run.task.to_device(batch, run.device) if run.task is not None else unpack(batch, run.device)


def test_pass(run: Run) -> tuple[float, float | None, dict[str, float]]:
    """Accuracy and cross-entropy on the test set (each rank scores its shard; the sums are exact),
    or a dense task's headline metric, no loss, and all its metrics as ``test_<name>``."""
    if run.task is not None:
        metrics = run.task.evaluate(run.model, run.loaders["test"])
        loss = metrics.get("loss")  # a language model's nats per token; detection and segmentation: None
        return metrics[run.task.metric], loss, {f"test_{k}": v for k, v in metrics.items()}
    sums = evaluate_sums(run.model, run.loaders["test"])
    correct, seen, loss_sum = ddp.all_reduce_sum(list(sums), run.ctx, run.device)
    if seen == 0:
        raise DataError("evaluate() got a loader that yielded no samples; check the dataset split and limit")
    return correct / seen, loss_sum / seen, {}


def val_pass(run: Run) -> dict[str, float]:
    """``val_acc`` / ``val_loss`` on the held-out training split that early stopping reads (a dense
    task's headline metric as ``val_acc``, with every metric as ``val_<name>``)."""
    if run.task is not None:
        metrics = run.task.evaluate(run.model, run.val_loader)
        return {**{f"val_{k}": v for k, v in metrics.items()}, "val_acc": metrics[run.task.metric]}
    sums = evaluate_sums(run.model, run.val_loader)
    correct, seen, loss_sum = ddp.all_reduce_sum(list(sums), run.ctx, run.device)
    if seen == 0:
        raise DataError("the held-out (val_loader) split yielded no samples; hold out more training data")
    return {"val_acc": correct / seen, "val_loss": loss_sum / seen}
