"""The files a finished training run leaves in its ``out_dir``: weights, history and result."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from safetensors.torch import save_file
from torch import nn

from netsculpt.fileio import atomic_write, write_json
from netsculpt.train.config import TrainConfig
from netsculpt.train.result import TrainResult


def write_outputs(
    out_dir: Path, model: nn.Module, config: TrainConfig, result: TrainResult, loss: dict[str, Any] | None
) -> None:
    """``model.safetensors``, ``history.json`` and ``result.json``, each written atomically."""
    # clone: safetensors refuses tensors that share storage (tied weights); a copy stores each on its own
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    atomic_write(out_dir / "model.safetensors", lambda p: save_file(tensors, str(p)))
    write_json(out_dir / "history.json", result.history)
    extra = {"loss": loss} if loss is not None else {}
    write_json(out_dir / "result.json", {"config": config.to_dict(), **extra, **result.to_dict()})
