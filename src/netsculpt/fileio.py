"""Safe file I/O: atomic writes and pickle-free tensor loading.

Outputs are written to a temporary file in the same folder and renamed into place, so an interrupted
run never leaves a half-written file where a good one was. Tensors are read from safetensors or with
``torch.load(weights_only=True)``: a file a user was handed is never unpickled.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from netsculpt.errors import CheckpointError


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` and then rename the temporary file onto ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        umask = os.umask(0)  # mkstemp makes 0600 files: give the result the permissions a plain open() would
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()
    return path


def write_json(path: str | os.PathLike[str], data: Any) -> Path:
    """Write ``data`` as indented JSON, atomically."""
    text = json.dumps(data, indent=2, sort_keys=False) + "\n"
    return atomic_write(path, lambda p: p.write_text(text))


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text))


def torch_save(path: str | os.PathLike[str], obj: Any) -> Path:
    """``torch.save`` atomically; ``obj`` must only hold tensors and plain Python data."""
    return atomic_write(path, lambda p: torch.save(obj, p))


def safe_torch_load(path: str | os.PathLike[str]) -> Any:
    """Load a torch file with ``weights_only=True``, turning every failure into a clear error."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types here: pickle, zip, unpickling-policy errors
        raise CheckpointError(
            f"cannot read {str(path)!r} as a safe PyTorch checkpoint ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}). netsculpt only loads tensors and plain data "
            "(torch.load weights_only=True) or safetensors files; re-save the weights with "
            "torch.save(model.state_dict(), path) or safetensors."
        ) from None


def load_state_dict_file(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a state dict from ``.safetensors``, or a torch file holding a state dict.

    Accepts the common wrappers ``{"state_dict": ...}`` / ``{"model": ...}`` written by training scripts.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        if not path.is_file():
            raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"cannot read {str(path)!r} as safetensors: {exc}") from None
    obj = safe_torch_load(path)
    for key in ("state_dict", "model", "model_state"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(
            f"{str(path)!r} does not hold a state dict (a mapping of names to tensors); "
            "save one with torch.save(model.state_dict(), path)"
        )
    return {k.removeprefix("module."): v for k, v in obj.items()}
