"""A small distillation run for the resume tests: a trained-looking teacher, a narrower student, a hint."""

from __future__ import annotations

import torch
from torch import nn

from netsculpt.train import DistillationLoss, DistillConfig, TrainConfig
from tests.train import _tiny

CONFIG = TrainConfig(epochs=3, lr=0.1, warmup_epochs=1, label_smoothing=0.05)
KD = DistillConfig(
    temperature=3.0, alpha=0.8, hints=["0"], hint_weight=0.1, mixup=1.0
)  # mixup: resume replays it


def teacher(seed: int = 11) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(_tiny.DIM, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, _tiny.NUM_CLASSES)
    )


def student(seed: int = 0) -> nn.Module:
    """Dropout in the student: the resume must restore torch's stream for it too."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(_tiny.DIM, 6), nn.ReLU(), nn.Dropout(0.2), nn.Linear(6, _tiny.NUM_CLASSES))


def loss(student_model: nn.Module, teacher_model: nn.Module, kd: DistillConfig = KD) -> DistillationLoss:
    example = _tiny.NoisyBlobs(1, seed=2, jitter=0.0)[0][0].unsqueeze(0)
    return DistillationLoss(
        teacher_model,
        kd,
        student=student_model,
        example_inputs=example,
        label_smoothing=CONFIG.label_smoothing,
        seed=CONFIG.seed,
    )
