"""The models, data and recipes the distributed tests run both under torchrun and in one process.

Kept in one module so the two sides cannot drift apart. The equivalence cases use no dropout, no data
jitter and no BatchNorm in the student: with those, N ranks on 1/N of each batch compute the same
averaged gradient as one process on the whole batch, so the weights must agree to float tolerance.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _tiny

from netsculpt.train import DistillationLoss, DistillConfig, TrainConfig

# one epoch of one global batch of 8 = exactly one optimizer step (each of 2 ranks sees 4 samples)
ONE_STEP = TrainConfig(epochs=1, batch_size=8, lr=0.1)
# 24 samples / batch 8 = 3 steps per epoch, 2 epochs, with Nesterov momentum, weight decay and cosine
MULTI_STEP = TrainConfig(epochs=2, batch_size=8, lr=0.1)
RESUME = TrainConfig(epochs=3, batch_size=32, lr=0.1, warmup_epochs=1)
KD = DistillConfig(temperature=2.0, alpha=0.7, hints=[("1", "2")], hint_weight=0.5)


def plain_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(_tiny.DIM, 16), nn.ReLU(), nn.Linear(16, _tiny.NUM_CLASSES))


def kd_student() -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(nn.Linear(_tiny.DIM, 6), nn.ReLU(), nn.Linear(6, _tiny.NUM_CLASSES))


def kd_teacher() -> nn.Module:
    """BatchNorm in the teacher: its running statistics must not move (it runs in eval mode)."""
    torch.manual_seed(4)
    return nn.Sequential(
        nn.Linear(_tiny.DIM, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, _tiny.NUM_CLASSES)
    )


def noisy_model(seed: int = 0) -> nn.Module:
    return _tiny.model(seed)


def _test_loader() -> DataLoader:
    return DataLoader(_tiny.NoisyBlobs(12, seed=2, jitter=0.0), batch_size=4)


def one_batch_loaders() -> tuple[DataLoader, DataLoader]:
    data = _tiny.NoisyBlobs(8, seed=1, jitter=0.0)
    return DataLoader(
        data, batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(7)
    ), _test_loader()


def ordered_loaders() -> tuple[DataLoader, DataLoader]:
    """Unshuffled: rank r's k-th batch is samples k*8+r, k*8+r+2, ..., so both ranks' k-th batches
    together are exactly the single process's k-th batch."""
    return DataLoader(_tiny.NoisyBlobs(24, seed=1, jitter=0.0), batch_size=8), _test_loader()


def noisy_loaders() -> tuple[DataLoader, DataLoader]:
    """Shuffled and jittered from every random stream: what the resume case must restore per rank."""
    return _tiny.loaders(batch_size=32)


def kd_loss(student: nn.Module, teacher: nn.Module) -> DistillationLoss:
    example = _tiny.NoisyBlobs(1, seed=2, jitter=0.0)[0][0].unsqueeze(0)
    return DistillationLoss(teacher, KD, student=student, example_inputs=example, seed=MULTI_STEP.seed)
