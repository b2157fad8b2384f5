"""A tiny trained CNN and in-memory image data: every search test scores candidates in milliseconds."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

CLASSES = 4
SHAPE = (3, 8, 8)


class TinyCNN(nn.Module):
    """Two conv/BN/ReLU stages and a residual-free head: three prunable channel groups."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(16)
        self.conv3 = nn.Conv2d(16, 16, 3, stride=2, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        x = self.relu(self.bn3(self.conv3(x)))
        return self.fc(self.pool(x).flatten(1))


def images(n: int, seed: int) -> TensorDataset:
    """Each class is a fixed random pattern; samples add noise strong enough that pruning shows."""
    patterns = torch.randn(CLASSES, *SHAPE, generator=torch.Generator().manual_seed(99))
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % CLASSES
    return TensorDataset(patterns[labels] + 1.5 * torch.randn(n, *SHAPE, generator=gen), labels)


def loaders(batch_size: int = 32) -> tuple[DataLoader, DataLoader]:
    train = DataLoader(
        images(256, 1), batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(0)
    )
    val = DataLoader(images(128, 2), batch_size=batch_size)
    return train, val


def trained_model(epochs: int = 6) -> nn.Module:
    """A TinyCNN trained for a fraction of a second (plain SGD), in eval mode."""
    torch.manual_seed(0)
    model = TinyCNN()
    train, _ = loaders()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model.train()
    for _ in range(epochs):
        for x, y in train:
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    return model.eval()


def example() -> torch.Tensor:
    return torch.randn(1, *SHAPE, generator=torch.Generator().manual_seed(5))
