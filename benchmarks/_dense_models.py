"""The benchmark's detector and segmenter, and a bare fit loop with a checkpoint per epoch.

The detector is torchvision's FCOS (its head, GroupNorm towers, losses and box decoding unchanged) on a
slim 4-stage conv backbone with a 64-channel FPN (P3-P7), for 1-channel 128 px canvases: small enough
to train from scratch on 2 CPU cores. The segmenter is torchvision's LR-ASPP head on a dilated
MobileNetV3-Small at width 0.5 (13 MMACs at 128 px) from random init, fed the gray canvas on 3 channels:
LR-ASPP MobileNetV3-Large (125 MMACs) reached only mIoU 0.345 in the 6 epochs the machine allowed.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch
from torch import nn

from netsculpt.models.dense import DIGITS_CLASSES, GraySegmenter, fcos_slim  # noqa: F401  (GraySegmenter)

NUM_CLASSES = DIGITS_CLASSES  # background + 10 digits


def build_detector() -> nn.Module:
    """The package's ``fcos_slim`` (netsculpt.models.dense), 128 px 1-channel canvases."""
    return fcos_slim(NUM_CLASSES, 1)


def fit(
    model: nn.Module,
    loader,
    step_loss,
    *,
    epochs: int,
    lr: float,
    ckpt: Path | None,
    label: str,
    warmup: int | None = None,
    seed: int = 0,
    on_epoch=None,
) -> None:
    """AdamW + per-batch cosine after ``warmup`` steps (default one epoch); resumes from ``ckpt``.
    ``seed`` shifts the per-epoch shuffling seeds (a second draw of the same schedule);
    ``on_epoch(epoch, mean_loss)``, when given, runs after each epoch, before its checkpoint.
    A ``step_loss`` with a ``learnable`` module (a distillation loss's feature-hint adapters) has it
    trained with the model and checkpointed beside it: adapters left at their random init make the
    hint term a fixed random projection the student chases."""
    extra = getattr(step_loss, "learnable", None)
    extra = extra if isinstance(extra, nn.Module) else None
    params = [p for p in model.parameters() if p.requires_grad]
    params += [p for p in extra.parameters() if p.requires_grad] if extra is not None else []
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    total, warm = epochs * len(loader), len(loader) if warmup is None else warmup

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(total - warm, 1)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    start = 0
    if ckpt is not None and ckpt.exists():
        state = torch.load(ckpt, weights_only=True)
        model.load_state_dict(state["model"])
        if extra is not None:
            extra.load_state_dict(state["learnable"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        start = int(state["epoch"])
        print(f"  [{label}] resumed at epoch {start}", flush=True)
    for epoch in range(start, epochs):
        torch.manual_seed(1000 + 100 * seed + epoch)
        model.train()
        if extra is not None:
            extra.train()
        t0, seen, loss_sum = time.perf_counter(), 0, 0.0
        for batch in loader:
            loss = step_loss(model, batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 10.0)
            opt.step()
            sched.step()
            seen += 1
            loss_sum += float(loss.detach())
        print(f"  [{label}] epoch {epoch + 1}/{epochs} loss {loss_sum / seen:.4f} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)  # fmt: skip
        if on_epoch is not None:
            on_epoch(epoch + 1, loss_sum / seen)
        if ckpt is not None:
            tmp = ckpt.with_suffix(".tmp")
            state = {"model": model.state_dict(), "opt": opt.state_dict(),
                     "sched": sched.state_dict(), "epoch": epoch + 1}  # fmt: skip
            if extra is not None:
                state["learnable"] = extra.state_dict()
            torch.save(state, tmp)
            tmp.replace(ckpt)
