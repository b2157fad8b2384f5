"""Shared test set-up: deterministic, single-threaded torch so tests run alike on every machine."""

from __future__ import annotations

import os

os.environ.setdefault("NETSCULPT_QUIET", "1")

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
