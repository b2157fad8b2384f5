"""Optimizer and learning-rate schedule built from a TrainConfig.

The schedule is a pure function of the global step (``lr_factor``), stepped once per batch, so it can be
tested on its own and a resumed run lands on exactly the learning rate the uninterrupted run had.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from netsculpt.errors import ConfigError
from netsculpt.train.config import TrainConfig

#: The step schedule multiplies the learning rate by STEP_GAMMA at these fractions of the post-warmup run.
STEP_MILESTONES = (0.5, 0.75)
STEP_GAMMA = 0.1


def lr_factor(config: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """Multiplier on ``config.lr`` for the batch numbered ``step`` (0-based, counted over the whole run).

    Warmup rises linearly so the first update already moves (factor 1/warmup_steps) and the last warmup
    batch reaches 1. Cosine then falls from 1 to 0 exactly at ``epochs * steps_per_epoch``. A config that
    is a slice of a longer schedule (``schedule_offset`` / ``schedule_epochs``) reads it at its offset.
    """
    total = config.schedule_span * steps_per_epoch
    warmup = config.warmup_epochs * steps_per_epoch
    step += config.schedule_offset * steps_per_epoch
    if step < warmup:
        return (step + 1) / warmup
    if config.schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if config.schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    # "step": validated in TrainConfig, so nothing else reaches here.
    return STEP_GAMMA ** sum(progress >= m for m in STEP_MILESTONES)


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Decay only weight matrices and kernels: decaying biases and norm scales just fights the data."""
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (decay if param.dim() > 1 else no_decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    groups = parameter_groups(model, config.weight_decay)
    if not groups:
        raise ConfigError("the model has no trainable parameters (all have requires_grad=False)")
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr)
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov)


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int) -> LambdaLR:
    """A per-batch LambdaLR; its state (the step counter) goes into every checkpoint."""
    return LambdaLR(optimizer, lambda step: lr_factor(config, step, steps_per_epoch))
