"""Shared fixtures: one tiny trained CNN and its data for every search test (trained once per session)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from tests.search import _tiny


@dataclass
class Tiny:
    model: nn.Module
    train: DataLoader
    val: DataLoader
    example: torch.Tensor


@pytest.fixture(scope="session")
def tiny() -> Tiny:
    torch.set_num_threads(1)
    train, val = _tiny.loaders()
    return Tiny(_tiny.trained_model(), train, val, _tiny.example())
