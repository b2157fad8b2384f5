"""The per-epoch callback seam: what it receives, and why calling it cannot change the run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from netsculpt.train.checkpoint import capture_rng, restore_rng

#: ``on_epoch_end(record) -> stop?``: called after each epoch's checkpoint with that epoch's record.
EpochCallback = Callable[[dict[str, float]], bool | None]


def call_rng_neutral(callback: EpochCallback, record: dict[str, float], loaders: dict[str, Any]) -> bool:
    """Run the user's callback without letting it shift the random streams the next epoch draws from."""
    saved = capture_rng(loaders)
    try:
        return bool(callback(record))
    finally:
        restore_rng(saved, loaders)
