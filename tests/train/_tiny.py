"""Tiny models and in-memory data for the training tests: each run takes well under a second.

The dataset draws noise from torch, numpy and Python ``random`` on every item and the model has dropout,
so every random stream the training loop must checkpoint is actually exercised by the resume tests.
"""

from __future__ import annotations

import random

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

NUM_CLASSES = 3
DIM = 8


class NoisyBlobs(Dataset):
    """Three Gaussian blobs in 8-d (linearly separable up to the noise), jittered on every access.

    The jitter draws from all four streams a loader may use: torch's global generator, numpy, Python
    ``random`` and a generator the dataset owns (as netsculpt's augmentation wrappers do).
    """

    def __init__(self, n: int, seed: int, jitter: float = 0.05) -> None:
        gen = torch.Generator().manual_seed(seed)
        centres = torch.randn(NUM_CLASSES, DIM, generator=torch.Generator().manual_seed(1234)) * 3
        self.targets = torch.arange(n) % NUM_CLASSES
        self.inputs = centres[self.targets] + torch.randn(n, DIM, generator=gen)
        self.jitter = jitter
        self.generator = torch.Generator().manual_seed(seed + 100)  # like an augmentation wrapper's own

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.jitter == 0:
            return self.inputs[index], self.targets[index]
        noise = torch.randn(DIM) * self.jitter + float(np.random.normal()) * self.jitter
        scale = (
            1.0
            + self.jitter * (random.random() - 0.5)
            + self.jitter * float(torch.rand(1, generator=self.generator))
        )
        return self.inputs[index] * scale + noise, self.targets[index]


def loaders(batch_size: int = 32, n_train: int = 192, n_test: int = 96, jitter: float = 0.05):
    """A shuffled training loader with its own seeded generator, and a fixed-order test loader."""
    train = DataLoader(
        NoisyBlobs(n_train, seed=1, jitter=jitter),
        batch_size=batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(7),
    )
    test = DataLoader(NoisyBlobs(n_test, seed=2, jitter=0.0), batch_size=batch_size)
    return train, test


def model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(DIM, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, NUM_CLASSES))


def assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    """Bitwise equality of every tensor in two state dicts (not allclose: resume must be exact)."""
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), f"{key} differs"
